"""``seedtree check-loader module:factory``: run ``seedtree.testing.check_loader`` on a
user's loader factory from the command line; exit 0 when invariant, 1 when it diverges."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from typing import Any

__all__ = ["add_parser", "cmd_check_loader", "load_factory"]


class FactoryError(Exception):
    """The factory named on the command line cannot be loaded."""


def load_factory(spec: str) -> Any:
    """``module:attr`` (``attr`` may be dotted) imported with the current folder on the path."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise FactoryError(f"name the factory as module:function (e.g. train:make_loader), got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise FactoryError(f"cannot import {module_name!r}: {exc}") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise FactoryError(f"{module_name!r} has no {attr!r}") from None
    return obj


def cmd_check_loader(args: argparse.Namespace) -> int:
    from ..integrations.loader_check import check_loader

    try:
        factory = load_factory(args.factory)
    except FactoryError as exc:
        print(f"seedtree check-loader: {exc}", file=sys.stderr)
        return 2
    layouts = [json.loads(text) for text in args.layout] if args.layout else None
    report = check_loader(factory, layouts=layouts, epochs=args.epochs, resume_points=args.resume_points)
    if args.json:
        out = {
            "ok": report.ok,
            "configurations": report.configurations,
            "samples_checked": report.samples_checked,
            "divergence": None if report.divergence is None else vars(report.divergence),
        }
        print(json.dumps(out, indent=2, default=list))
    else:
        print(report)
    return 0 if report.ok else 1


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "check-loader",
        help="prove a loader invariant to workers and resume (seedtree.testing.check_loader)",
        description="Build your loader with make_loader(**layout) under a matrix of layouts (num_workers, "
        "persistent_workers, spawn) and mid-epoch resumes, compare each with the num_workers=0 uninterrupted "
        "run, and name the first sample that diverges. Exit 0 when invariant, 1 when not, 2 on bad input.",
    )
    p.add_argument("factory", metavar="MODULE:FACTORY", help="a function make_loader(**layout) -> loader")
    p.add_argument("--epochs", type=int, default=2, help="epochs per configuration (default 2)")
    p.add_argument("--resume-points", type=int, default=3, help="mid-epoch resume points per epoch (default 3)")
    p.add_argument(
        "--layout",
        action="append",
        metavar="JSON",
        help="a layout to compare, as JSON (repeatable), e.g. '{\"num_workers\": 2}'; default: 1 and 2 workers, "
        "persistent, spawn",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_check_loader)
