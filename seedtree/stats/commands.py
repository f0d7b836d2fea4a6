"""CLI commands of the stats package (`seedtree check`, `seedtree stream`)."""

from __future__ import annotations

import argparse


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Add this package's subcommands; each sets ``func(args) -> int`` (exit status)."""
