"""PyTorch's own DataLoader tests, run against ``seedtree.torch.loader`` as a drop-in.

PyTorch's ``test/test_dataloader.py`` is not part of this project: pass its path (a copy
matching the installed torch). The script imports it as a module, points its
``DataLoader`` name (and ``torch.utils.data.DataLoader``, which some of its tests call
directly) at an adapter that maps torch's positional arguments to keywords and calls
``seedtree.torch.loader(dataset, SeedTree(0), ...)`` with only the arguments the test
gave (``shuffle`` stays at torch's default), runs the classes that build a loader, and
prints passed/failed with the reason of each failure. ``--stock`` runs the same tests
against torch's own DataLoader (the baseline).

    .venv/bin/python benchmarks/torch_compat.py /path/to/test_dataloader.py          # ~6 min on 2 cores
    .venv/bin/python benchmarks/torch_compat.py /path/to/test_dataloader.py --stock
    .venv/bin/python benchmarks/torch_compat.py PATH -k test_sampler -k test_len     # a few tests

Writes ``results/torch_compat.json`` (``results/torch_compat_stock.json`` with ``--stock``).
The documented reason of each expected difference is in ``docs/integrations/torch-compat.md``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import multiprocessing
import os
import signal
import sys
import time
import traceback
import unittest
from pathlib import Path
from typing import Any

OUT = Path(__file__).parent / "results"

# The classes of torch's file that build a DataLoader (the dataset, sampler and collate
# classes test torch's other utilities and are left out).
CLASSES = (
    "TestDataLoader",
    "TestDataLoaderPersistentWorkers",
    "TestDataLoaderDeviceTypeCPU",
    "IntegrationTestDataLoaderDataPipe",
    "TestStringDataLoader",
    "TestDictDataLoader",
    "TestNamedTupleDataLoader",
    "TestCustomPinFn",
    "TestIndividualWorkerQueue",
    "TestSetAffinity",
    "TestConvAfterFork",
    "TestOutOfOrderDataLoader",
)

# torch's DataLoader.__init__ positional parameters, in order.
POSITIONAL = (
    "batch_size",
    "shuffle",
    "sampler",
    "batch_sampler",
    "num_workers",
    "collate_fn",
    "pin_memory",
    "drop_last",
    "timeout",
    "worker_init_fn",
    "multiprocessing_context",
    "generator",
)

_ENV = "SEEDTREE_TORCH_COMPAT"  # "<mode>:<path>", read again by spawned processes
TIMEOUT = 900  # seconds one test may take before it is reported as hanging


class _Hung(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise _Hung(f"no result within {TIMEOUT} s (hung)")


class DropIn:
    """What the test file's ``DataLoader`` name becomes: calling it builds
    ``seedtree.torch.loader(dataset, SeedTree(0), **keywords)``; ``DropIn[T]`` works as
    ``DataLoader[T]`` does in annotations."""

    def __new__(cls, dataset: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: D102
        import seedtree as st
        from seedtree.torch import loader

        if len(args) > len(POSITIONAL):
            raise TypeError(f"DataLoader takes at most {len(POSITIONAL) + 1} positional arguments")
        for name, value in zip(POSITIONAL, args, strict=False):
            if name in kwargs:
                raise TypeError(f"DataLoader got multiple values for argument {name!r}")
            kwargs[name] = value
        return loader(dataset, st.SeedTree(0), **kwargs)

    def __class_getitem__(cls, item: Any) -> Any:
        return cls


def load(path: str, mode: str) -> Any:
    """Import torch's test file as a module (named after the file, as it imports itself)
    and, unless ``mode`` is ``"stock"``, point its ``DataLoader`` at the drop-in."""
    import torch.utils.data

    file = Path(path).resolve()
    if str(file.parent) not in sys.path:
        sys.path.insert(0, str(file.parent))
    module = importlib.import_module(file.stem)
    if mode != "stock":  # the stock baseline never imports seedtree
        import seedtree.torch  # noqa: F401  # bound to torch's real DataLoader before the names change

        module.DataLoader = DropIn
        torch.utils.data.DataLoader = DropIn  # type: ignore[misc,assignment]
    return module


def _reason(err: tuple[Any, ...]) -> str:
    """The last line of the exception, with the test-file frame that raised it."""
    kind, value, tb = err
    frames = [f for f in traceback.extract_tb(tb) if f.filename.endswith(".py")]
    where = ""
    for frame in reversed(frames):
        if "test_dataloader" in frame.filename or frame.filename.endswith(Path(sys.argv[1]).name):
            where = f" [line {frame.lineno}: {(frame.line or '').strip()[:80]}]"
            break
    message = str(value).strip().splitlines()
    return f"{kind.__name__}: {message[0][:300] if message else ''}{where}"


class _Result(unittest.TextTestResult):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rows: list[dict[str, Any]] = []
        self._start = 0.0

    def startTest(self, test: unittest.TestCase) -> None:  # noqa: N802
        self._start = time.perf_counter()
        signal.alarm(TIMEOUT)
        super().startTest(test)

    def stopTest(self, test: unittest.TestCase) -> None:  # noqa: N802
        signal.alarm(0)
        # One of torch's tests switches the process-wide start method to forkserver and
        # leaves it so: every test starts from the platform default, whichever ran before.
        multiprocessing.set_start_method(_START_METHOD, force=True)
        super().stopTest(test)

    def _row(self, test: Any, outcome: str, reason: str = "") -> None:
        self.rows.append(
            {
                "test": test.id().split(".", 1)[-1],
                "outcome": outcome,
                "reason": reason,
                "seconds": round(time.perf_counter() - self._start, 2),
            }
        )

    def addSuccess(self, test: Any) -> None:  # noqa: N802
        super().addSuccess(test)
        self._row(test, "passed")

    def addFailure(self, test: Any, err: Any) -> None:  # noqa: N802
        super().addFailure(test, err)
        self._row(test, "failed", _reason(err))

    def addError(self, test: Any, err: Any) -> None:  # noqa: N802
        super().addError(test, err)
        self._row(test, "failed", _reason(err))

    def addSkip(self, test: Any, reason: str) -> None:  # noqa: N802
        super().addSkip(test, reason)
        self._row(test, "skipped", reason)

    def addExpectedFailure(self, test: Any, err: Any) -> None:  # noqa: N802
        super().addExpectedFailure(test, err)
        self._row(test, "passed", "expected failure")

    def addUnexpectedSuccess(self, test: Any) -> None:  # noqa: N802
        super().addUnexpectedSuccess(test)
        self._row(test, "failed", "unexpected success")


_START_METHOD = multiprocessing.get_start_method()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", help="PyTorch's test/test_dataloader.py (matching the installed torch)")
    parser.add_argument("--stock", action="store_true", help="torch's own DataLoader (the baseline)")
    parser.add_argument("-k", action="append", default=[], help="only tests whose name contains this")
    parser.add_argument(
        "--join-timeout",
        type=float,
        default=300.0,
        help="torch's JOIN_TIMEOUT, the seconds a test waits for the process it started (torch's 60 s is "
        "too short for a spawned process that imports torch on a loaded 2-core machine; the same for --stock)",
    )
    args = parser.parse_args()
    mode = "stock" if args.stock else "seedtree"
    os.environ[_ENV] = f"{mode}:{Path(args.path).resolve()}"
    os.environ.setdefault("PYTORCH_PRINT_REPRO_ON_FAILURE", "0")  # one-line reasons
    sys.argv[1:] = [args.path]  # torch's test utilities parse the command line
    module = load(args.path, mode)
    module.JOIN_TIMEOUT = args.join_timeout

    suite = unittest.TestSuite()
    for name in CLASSES:
        cls = getattr(module, name, None)
        if cls is None:
            print(f"(no class {name} in this file)")
            continue
        for test in unittest.defaultTestLoader.loadTestsFromTestCase(cls):
            if not args.k or any(k in test.id() for k in args.k):
                suite.addTest(test)
    signal.signal(signal.SIGALRM, _alarm)
    started = time.time()
    runner = unittest.TextTestRunner(resultclass=_Result, verbosity=0, stream=open(os.devnull, "w"))  # noqa: SIM115
    result: Any = runner.run(suite)
    rows = result.rows
    counts = {k: sum(r["outcome"] == k for r in rows) for k in ("passed", "failed", "skipped")}
    print(
        f"{mode}: {len(rows)} tests: {counts['passed']} passed, {counts['skipped']} skipped, {counts['failed']} failed"
    )
    print(f"passing or skipped (torch's count): {counts['passed'] + counts['skipped']} of {len(rows)}")
    for r in rows:
        if r["outcome"] == "failed":
            print(f"FAILED {r['test']}: {r['reason']}")
    OUT.mkdir(exist_ok=True)
    out = OUT / ("torch_compat_stock.json" if args.stock else "torch_compat.json")
    if not args.k:
        meta = {"mode": mode, "seconds": round(time.time() - started), "counts": counts, "tests": rows}
        out.write_text(json.dumps(meta, indent=1) + "\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
elif __name__ == "__mp_main__" and os.environ.get(_ENV):
    # A process the tests spawn re-imports this file as its main module: give it the same
    # DataLoader name before it unpickles its target (a function of torch's test file).
    _mode, _, _path = os.environ[_ENV].partition(":")
    load(_path, _mode)
