"""The ``seedtree`` command line: run, verify, doctor, show, diff, demo (and the battery's
check and stream, added by ``seedtree.stats.commands``).

Exit statuses: 0 success; 1 a negative verdict (not reproducible, manifests differ, doctor
probe found duplicated streams); 2 a usage error or unreadable input; 126/127 the command
cannot be started (like a shell); ``run`` passes the command's own status through. User
errors print one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import NoReturn

from ..core.version import VERSION
from ..stats import commands as stats_commands
from ..stats.commands import parse_root
from . import check_loader

__all__ = [
    "Parser",
    "UserError",
    "build_parser",
    "cmd_demo",
    "cmd_diff",
    "cmd_doctor",
    "cmd_run",
    "cmd_show",
    "cmd_verify",
    "main",
]


class UserError(Exception):
    """A problem with what the user asked for: printed as one line, exit status ``status``."""

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the command and where to get help."""

    def error(self, message: str) -> NoReturn:
        raise UserError(f"{self.prog}: {message} (see `{self.prog} --help`)")


def _field(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _command(args: argparse.Namespace) -> list[str]:
    argv = list(args.cmd)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise UserError(
            f"seedtree {args.command}: no command given; put it after `--`, e.g. "
            f"seedtree {args.command} -- python train.py"
        )
    return argv


def _root(args: argparse.Namespace):
    from ..core.tree import SeedTree
    from ..runtime.manifest import Manifest, ManifestError

    if getattr(args, "manifest", None):
        try:
            return Manifest.load(args.manifest).root, False
        except ManifestError as exc:
            raise UserError(str(exc)) from None
    if args.seed is not None:
        return SeedTree(args.seed), False
    return SeedTree(), True


def _load_manifest(path: str):
    from ..runtime.manifest import Manifest, ManifestError

    try:
        return Manifest.load(path)
    except ManifestError as exc:
        raise UserError(str(exc)) from None


# -- run ---------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from . import run as runner

    argv = _command(args)
    root, fresh = _root(args)
    fields = dict(args.field or [])
    if "run" in fields:
        raise UserError("seedtree run: --field run=... is reserved for what seedtree run records; pick another name")
    if args.record is not None:  # find out now, not after a long run that cannot be recorded
        if os.path.isdir(args.record):
            raise UserError(
                f"seedtree run: --record {args.record} is a folder; name the manifest file, "
                f"e.g. {os.path.join(args.record, 'seeds.json')}"
            )
        folder = os.path.dirname(os.path.abspath(args.record))
        if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
            raise UserError(
                f"seedtree run: cannot write --record {args.record}: the folder {folder} "
                "does not exist or is not writable"
            )
    datasets = _run_datasets(args)
    if fresh and args.record is None:
        print(f"seedtree run: root entropy {root.entropy} (replay with --seed {root.entropy})", file=sys.stderr)
    try:
        result = runner.run(argv, root, record=args.record, fields=fields, datasets=datasets)
    except runner.CommandNotFound as exc:
        raise UserError(f"seedtree run: {exc}", exc.status) from None
    except ValueError as exc:
        raise UserError(f"seedtree run: {exc}") from None
    except OSError as exc:
        raise UserError(f"seedtree run: cannot write the manifest {args.record}: {exc.strerror or exc}", 1) from None
    if result.returncode < 0:
        args.die_by_signal = -result.returncode
        return 128 - result.returncode
    return result.returncode


def _run_datasets(args: argparse.Namespace) -> dict:
    """Hash ``--dataset`` and, on a replay, the manifest's datasets before the command starts;
    a changed dataset stops the run (exit 2) unless ``--allow-data-change``."""
    from ..runtime.datasets import DatasetError
    from . import run as runner

    if args.allow_data_change and not args.manifest:
        raise UserError("seedtree run: --allow-data-change only applies when replaying (--manifest FILE)")
    try:
        named = runner.parse_datasets(args.dataset or [])
        recorded = _load_manifest(args.manifest).datasets if args.manifest else {}
        progress = True if args.progress else None
        digests = runner.check_datasets(named, recorded, allow_change=args.allow_data_change, progress=progress)
    except DatasetError as exc:
        raise UserError(f"seedtree run: {exc}") from None
    for name, digest in digests.items():
        if digest.previous is not None:
            print(
                f"seedtree run: dataset {name!r} changed (sha256 {digest.previous} recorded, {digest.sha256} now); "
                "running anyway (--allow-data-change), the new manifest records both",
                file=sys.stderr,
            )
    return digests


def _check_writable(command: str, option: str, path: str | None) -> None:
    """Refuse now, not after a long run, an output file that cannot be written."""
    if path is None:
        return
    if os.path.isdir(path):
        raise UserError(f"seedtree {command}: {option} {path} is a folder; name the file to write")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        raise UserError(
            f"seedtree {command}: cannot write {option} {path}: the folder {folder} does not exist or is not writable"
        )


# -- verify ------------------------------------------------------------------------------


def cmd_verify(args: argparse.Namespace) -> int:
    from . import run as runner
    from . import verify

    argv = _command(args)
    if args.tries < 2:
        raise UserError(f"seedtree verify: -n must be at least 2 to compare runs, got {args.tries}")
    root, _ = _root(args)
    _check_writable("verify", "--junit", args.junit)
    started = time.monotonic()
    try:
        result = verify.verify(
            argv,
            outputs=args.output or [],
            tries=args.tries,
            root=root,
            other_root=not args.no_root_check,
            keep=args.keep,
            log=lambda line: print(line, file=sys.stderr),
        )
    except runner.CommandNotFound as exc:
        raise UserError(f"seedtree verify: {exc}", exc.status) from None
    except verify.VerifyError as exc:
        raise UserError(f"seedtree verify: {exc}") from None
    print(result.summary())
    if args.junit is not None:
        try:
            verify.write_junit(result, args.junit, argv, time.monotonic() - started, strict=args.strict)
        except OSError as exc:
            raise UserError(f"seedtree verify: cannot write --junit {args.junit}: {exc.strerror or exc}") from None
    if not result.ok:
        return 1
    if args.strict and result.seed_effect is False:
        return 1
    return 0


# -- doctor ------------------------------------------------------------------------------


def cmd_doctor(args: argparse.Namespace) -> int:
    from . import doctor

    report = doctor.diagnose(probe=args.probe)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(doctor.render(report))
    if report["probe"] is not None and not report["probe"]["ok"]:
        return 1
    if args.strict and report["warnings"]:
        return 1
    return 0


# -- show / diff -------------------------------------------------------------------------


def cmd_show(args: argparse.Namespace) -> int:
    from .show import show

    manifest = _load_manifest(args.manifest)
    if args.json:
        print(json.dumps(manifest.to_dict(), indent=2))
    else:
        print(show(manifest, args.manifest))
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    from .show import diff

    a, b = _load_manifest(args.a), _load_manifest(args.b)
    significant, volatile = diff(a, b)
    if significant:
        print(f"{args.a} and {args.b} differ ({len(significant)}):")
        print("\n".join(significant))
    else:
        print(f"{args.a} and {args.b} match (root, streams, environment, fields)")
    if volatile:
        print(f"expected to differ between runs ({len(volatile)}):")
        print("\n".join(volatile))
    return 1 if significant else 0


# -- demo --------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    from . import demo

    try:
        return demo.main(out=args.out, seed=args.seed)
    except OSError as exc:
        raise UserError(f"seedtree demo: cannot write to {args.out}: {exc.strerror or exc}", 1) from None


# -- parser ------------------------------------------------------------------------------

_EPILOG_RUN = """\
examples:
  seedtree run --seed 42 --record seeds.json -- python train.py --epochs 3
  seedtree run --manifest seeds.json -- python train.py --epochs 3   # replay that root
  seedtree run --seed 42 --dataset train=data/train --record seeds.json -- python train.py

A replay (--manifest) re-hashes the datasets the manifest recorded and refuses (exit 2)
when one changed, naming it and both hashes; --allow-data-change runs anyway.

The command gets SEEDTREE_ENTROPY (read by seedtree.seed_everything() and
seedtree.root_from_env()) and PYTHONHASHSEED derived from the root, unless you set it.
Exit status: the command's; killed by a signal, seedtree dies by the same signal
(one it cannot raise on itself, such as SIGKILL: exits 128 + n, 137, like a shell)."""

_EPILOG_VERIFY = """\
Each try runs in a fresh temporary folder mirroring the current one with symlinks, except
the --output paths: they start absent (an output folder starts empty) and their parent
folders are real, so each try writes its own copy. Every try runs at the same absolute
path, so outputs that record where they were written (checkpoints) do not differ by it.
Outputs are compared by content hash; .npy and .npz files element-wise, .pt/.pth/.ckpt as
torch objects (torch.load(weights_only=True)), naming the first differing key and element.
Without --output the command's stdout is compared. A last try with a different root warns
when nothing changes (the seed is not reaching the code).
exit status: 0 every try matched; 1 a mismatch or a failed try; 2 usage error."""


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="seedtree", description="Reproducible parallel random streams.")
    parser.add_argument("--version", action="version", version=f"seedtree {VERSION}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    raw = argparse.RawDescriptionHelpFormatter

    p = sub.add_parser(
        "run",
        help="run a command with the root handed over; record a manifest",
        description="Run CMD with a seed tree root handed over through its environment.",
        epilog=_EPILOG_RUN,
        formatter_class=raw,
    )
    source = p.add_mutually_exclusive_group()
    source.add_argument("--seed", type=parse_root, metavar="N", help="root entropy (default: fresh OS entropy)")
    source.add_argument("--manifest", metavar="FILE", help="replay the root recorded in this manifest")
    p.add_argument("--record", metavar="FILE", help="write the run's manifest (JSON) here")
    p.add_argument(
        "--field",
        type=_field,
        action="append",
        metavar="KEY=VALUE",
        help="extra manifest field (VALUE parsed as JSON when it is JSON); repeatable",
    )
    p.add_argument(
        "--dataset",
        action="append",
        metavar="NAME=PATH",
        help="record the content hash of this file or folder under NAME; on a replay, give a "
        "recorded dataset's new place; repeatable",
    )
    p.add_argument(
        "--allow-data-change",
        action="store_true",
        help="on a replay, run even if a recorded dataset changed (the manifest records both hashes)",
    )
    p.add_argument(
        "--progress",
        action="store_true",
        help="show a progress bar while hashing datasets even when stderr is not a terminal",
    )
    p.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD ...", help="the command and its arguments")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "verify",
        help="run a command several times and check its outputs are identical",
        description="Run CMD several times with the same root and compare its outputs.",
        epilog=_EPILOG_VERIFY,
        formatter_class=raw,
    )
    p.add_argument("-n", "--tries", type=int, default=2, metavar="N", help="runs with the same root (default 2)")
    p.add_argument("--seed", type=parse_root, metavar="N", help="root entropy (default: fresh OS entropy)")
    p.add_argument(
        "-o",
        "--output",
        action="append",
        metavar="PATH",
        help="a file or folder the command writes, relative to the current folder; repeatable",
    )
    p.add_argument("--no-root-check", action="store_true", help="skip the extra run with a different root")
    p.add_argument("--strict", action="store_true", help="fail (exit 1) when a different root changes nothing")
    p.add_argument("--keep", action="store_true", help="keep the tries' folders and print where they are")
    p.add_argument(
        "--junit",
        metavar="FILE",
        help="also write the verdict as JUnit XML (one test case per compared output) for CI systems",
    )
    p.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD ...", help="the command and its arguments")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser(
        "doctor",
        help="report what will break reproducibility here",
        description="Report the settings of this environment that bear on reproducibility.",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output (schema: seedtree.doctor v1)")
    p.add_argument(
        "--probe",
        action="store_true",
        help="also run a small worker pool / DataLoader and audit them for duplicated streams",
    )
    p.add_argument("--strict", action="store_true", help="exit 1 when there is any warning")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("show", help="print a manifest readably", description="Print a seedtree manifest.")
    p.add_argument("manifest", metavar="MANIFEST", help="a manifest JSON file")
    p.add_argument("--json", action="store_true", help="print the validated manifest as JSON")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser(
        "diff",
        help="what differs between two manifests",
        description="Compare two manifests: seeds, datasets, code, packages, determinism flags, "
        "hardware, fields; most likely causes of a different result first. "
        "Exit 1 when they differ beyond timestamps.",
    )
    p.add_argument("a", metavar="A", help="first manifest")
    p.add_argument("b", metavar="B", help="second manifest")
    p.set_defaults(func=cmd_diff)

    p = sub.add_parser(
        "demo",
        help="show layout invariance end to end; write a manifest and a plot",
        description="Build a tree, show bit-identical results across parallel layouts, "
        "check independence, write a manifest and a plot.",
    )
    p.add_argument("--out", default="seedtree-demo", metavar="DIR", help="folder to write (default ./seedtree-demo)")
    p.add_argument("--seed", type=parse_root, default=20240607, metavar="N", help="root entropy (default 20240607)")
    p.set_defaults(func=cmd_demo)

    check_loader.add_parser(sub)
    stats_commands.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line. Called with ``argv=None`` (as the ``seedtree`` program), a
    command that ``run`` started and that was killed by a signal takes this process down
    with the same signal, as a shell's ``exec`` would (for SIGKILL and the other signals a
    process cannot raise on itself it exits 128 + the signal number, as a shell does);
    called with a list it returns 128 + the signal number."""
    program = argv is None
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not hasattr(args, "func"):
            parser.print_help()
            return 2
        status = int(args.func(args) or 0)
    except UserError as exc:
        print(exc if str(exc).startswith("seedtree") else f"seedtree: {exc}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        print("seedtree: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `seedtree show x.json | head`: quiet, like other tools
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    sig = getattr(args, "die_by_signal", None)
    if program and sig:
        from .run import die_by_signal

        sys.stdout.flush()
        die_by_signal(sig)  # returns for a signal a process cannot raise on itself (SIGKILL): exit 128 + n
    return status


if __name__ == "__main__":
    sys.exit(main())
