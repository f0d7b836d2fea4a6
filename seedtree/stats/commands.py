"""CLI commands of the stats package (`seedtree check`, `seedtree stream`)."""

from __future__ import annotations

import argparse
import os
import re
import secrets
import sys
from collections.abc import Iterator
from typing import Any

__all__ = ["add_parsers", "parse_root", "parse_size", "run_check", "run_stream"]

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.I)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int:
    """Bytes from '4096', '16M', '1G', '4GiB', '512KB' (K/M/G/T are powers of 1024)."""
    m = _SIZE.match(text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use e.g. 16M, 1G, 4096)")
    value = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if value != int(value) or value < 1:
        raise argparse.ArgumentTypeError(f"size {text!r} is not a positive whole number of bytes")
    return int(value)


def parse_root(text: str) -> int:
    """A non-negative int root, decimal or 0x-hex."""
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"root must be an int (decimal or 0x hex), got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"root must be non-negative, got {value}")
    return value


def _scheme_help() -> str:
    from .schemes import SCHEMES

    groups: dict[str, list[str]] = {}
    for name, s in SCHEMES.items():
        groups.setdefault(s.kind, []).append(name)
    text = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in groups.items())
    return f"{text}; or module:function for your own function i -> numpy Generator"


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Add this package's subcommands; each sets ``func(args) -> int`` (exit status)."""
    check = subparsers.add_parser(
        "check",
        help="test a stream scheme for independence (exit 0 pass, 1 fail, 2 error)",
        description="Build K streams of a scheme exactly as it makes them, interleave them word by word and "
        "test the result. Verdict rule: Holm over all p-values at family-wise level 0.01; anything flagged is "
        "re-tested with a new root; FAIL only if the re-test flags too.",
    )
    check.add_argument("--scheme", default="seedtree", help=_scheme_help())
    check.add_argument("--streams", type=int, default=1024, help="number of streams interleaved (default 1024)")
    check.add_argument(
        "--bytes",
        type=parse_size,
        default=None,
        help="bytes of interleaved stream for the own battery and PractRand (default 16M, 1G with --thorough)",
    )
    check.add_argument(
        "--battery", default="own", help="comma-separated: own, testu01, practrand, dieharder (default own)"
    )
    check.add_argument(
        "--testu01",
        default="smallcrush",
        choices=["smallcrush", "crush", "bigcrush", "crush-linear", "smoke"],
        help="TestU01 battery for --battery testu01 (default smallcrush; crush-linear = Crush's "
        "MatrixRank and LinearComp tests only)",
    )
    check.add_argument("--root", type=parse_root, default=None, help="root seed (default: fresh, printed)")
    check.add_argument("--thorough", action="store_true", help="thorough mode: 1G by default, more rank matrices")
    check.add_argument(
        "--first-children",
        type=int,
        default=None,
        help="children in the first-outputs stream (default grows with --bytes; 0: off)",
    )
    check.add_argument("--json", metavar="PATH", help="write the report as JSON")
    check.add_argument("--plot", metavar="PATH", help="write a p-value plot (PNG)")
    bar = check.add_mutually_exclusive_group()
    bar.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="progress bar on stderr (default: when stderr is a terminal)",
    )
    bar.add_argument("--no-progress", dest="progress", action="store_false")
    check.add_argument("--list", action="store_true", help="list the schemes and the external tools found, then exit")
    check.set_defaults(func=run_check)

    stream = subparsers.add_parser(
        "stream",
        help="write K interleaved streams as raw 64-bit words to stdout (for external batteries)",
        description="Write the interleaved stream (word t of stream 0, 1, ..., K-1, then word t+1 ...) as raw "
        "little-endian 64-bit words to stdout; endless without --bytes. E.g. "
        "seedtree stream --scheme seedtree --streams 8192 | RNG_test stdin64",
    )
    stream.add_argument("--scheme", default="seedtree", help=_scheme_help())
    stream.add_argument("--streams", type=int, default=1024, help="number of streams interleaved (default 1024)")
    stream.add_argument("--bytes", type=parse_size, default=None, help="stop after this many bytes (default: endless)")
    stream.add_argument("--root", type=parse_root, default=None, help="root seed (default: fresh, printed on stderr)")
    stream.add_argument(
        "--first",
        type=int,
        default=None,
        metavar="WORDS",
        help="write the first-outputs stream instead: the first WORDS words of child 0, 1, 2, ...",
    )
    stream.set_defaults(func=run_stream)


def _error(command: str, message: str) -> int:
    print(f"seedtree {command}: error: {message}", file=sys.stderr)
    return 2


def _list() -> int:
    from .external import tool_status
    from .schemes import SCHEMES

    print("schemes:")
    for name, s in SCHEMES.items():
        print(f"  {name:<20} {s.kind:<8} {s.about}")
    print("batteries:")
    print("  own                  built in (numpy/scipy)")
    for name, path in tool_status().items():
        print(f"  {name:<20} {path or 'not installed'}")
    return 0


def run_check(args: argparse.Namespace) -> int:
    """``seedtree check``: 0 if the scheme passes, 1 if it fails, 2 on an error."""
    if args.list:
        return _list()
    from .check import check
    from .external import BatteryUnavailable

    batteries = tuple(b.strip() for b in args.battery.split(",") if b.strip())
    n_bytes = args.bytes if args.bytes is not None else (1 << 30 if args.thorough else 16 << 20)
    root = secrets.randbits(64) if args.root is None else args.root
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    try:
        report = check(
            args.scheme,
            args.streams,
            n_bytes,
            batteries,
            root,
            progress,
            mode="thorough" if args.thorough else "quick",
            testu01=args.testu01,
            first_children=args.first_children,
        )
    except (BatteryUnavailable, ValueError, TypeError, ImportError) as exc:
        return _error("check", str(exc))
    print(report.table())
    if args.json:
        report.save(args.json)
    if args.plot:
        report.plot(args.plot)
    return 0 if report.passed else 1


def run_stream(args: argparse.Namespace) -> int:
    """``seedtree stream``: raw little-endian 64-bit words on stdout; quiet on a closed pipe."""
    from .source import Interleaved, first_outputs

    root = args.root
    if root is None:
        root = secrets.randbits(64)
        print(f"seedtree stream: root {root}", file=sys.stderr)
    try:
        if args.first is not None:
            if args.first < 1:
                return _error("stream", f"--first needs at least 1 word per child, got {args.first}")
            blocks: Iterator[Any] = (b.T.reshape(-1) for b in first_outputs(args.scheme, root, None, args.first))
        else:
            blocks = Interleaved(args.scheme, args.streams, root).chunks()
    except (ValueError, TypeError, ImportError) as exc:
        return _error("stream", str(exc))
    out = sys.stdout.buffer
    left = args.bytes
    try:
        for words in blocks:
            data = words.astype("<u8", copy=False).tobytes()
            if left is not None:
                data = data[:left]
                left -= len(data)
            out.write(data)
            if left == 0:
                break
        out.flush()
    except BrokenPipeError:
        # The reader is done (e.g. `| head -c 100`): not an error. Point stdout at /dev/null so
        # the interpreter's final flush does not complain either.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    return 0
