"""The ``seedtree`` command line (skeleton; subcommands are added by their modules)."""

from __future__ import annotations

import argparse
import sys

from . import __version__
from .stats import commands as stats_commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seedtree", description="Reproducible parallel random streams.")
    parser.add_argument("--version", action="version", version=f"seedtree {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    stats_commands.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
