"""Put first on a command's ``PYTHONPATH`` by ``seedtree run`` and ``seedtree verify``.

Python imports this before the program's first line. It seeds the process from the run's
root (which process gets which stream: ``seedtree.runtime.autoseed``), then runs the
``sitecustomize`` that this file hides, if there is one. It imports seedtree only where
something is seeded: a process left alone pays nothing and reports nothing.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys

# The values of seedtree.runtime.autoseed.ENV_AUTO_SEED, spelled here too: importing
# seedtree to read them would cost every process, even one left alone.
_ENV = "SEEDTREE_AUTO_SEED"
_ROOT = "root"
_PARENT = "parent:"
_OFF = "off"
_HERE = os.path.dirname(os.path.abspath(__file__))


def _say(text: str) -> None:
    print(f"seedtree (auto-seed): {text}; pass --no-auto-seed to run it unseeded", file=sys.stderr)


def _started_by_multiprocessing() -> str | None:
    """``spawn`` when multiprocessing started this interpreter to run one process,
    ``forkserver`` when to fork them, else None."""
    argv = getattr(sys, "orig_argv", [])
    if "--multiprocessing-fork" in argv:
        return "spawn"
    if any("multiprocessing.forkserver import main" in a for a in argv):
        return "forkserver"
    return None


class _Parent:
    """The parent's mark, for the multiprocessing after-start hook (which holds it weakly;
    this module's ``_held`` holds it strongly)."""

    def __init__(self, mark: str) -> None:
        self.mark = mark


_held: list[_Parent] = []


def _child_started(parent: _Parent) -> None:
    try:
        from seedtree.runtime import autoseed

        autoseed.start_child(parent.mark)
    except Exception as exc:  # multiprocessing would swallow it silently
        _say(f"could not seed this worker process ({type(exc).__name__}: {exc})")


def _seed() -> None:
    mark = os.environ.get(_ENV, "")
    if mark == _ROOT:
        try:
            from seedtree.runtime import autoseed
        except ImportError as exc:
            os.environ[_ENV] = _OFF
            _say(f"{sys.executable} cannot import seedtree ({exc}), so this program is not seeded")
            return
        autoseed.start_root()
    elif mark.startswith(_PARENT) and _started_by_multiprocessing() == "spawn":
        import multiprocessing.context

        parent = _Parent(mark)

        def after_spawn() -> None:
            _child_started(parent)

        # The one hook a spawned process runs between becoming a multiprocessing process
        # (its identity is known) and running its target; the stdlib's does nothing
        # ("process is spawned"), and this interpreter exists only to run that process.
        multiprocessing.context.SpawnProcess._after_fork = staticmethod(after_spawn)  # type: ignore[attr-defined]
    elif mark.startswith(_PARENT) and _started_by_multiprocessing() == "forkserver":
        import multiprocessing.util

        # The processes the forkserver forks run the after-fork hooks as they start.
        _held.append(_Parent(mark))
        multiprocessing.util.register_after_fork(_held[-1], _child_started)
    elif mark:
        # Another Python program the command started: it cannot get a stream of its own
        # deterministically and must not get its parent's, so it and what it starts are
        # left alone.
        os.environ[_ENV] = _OFF


def _chain() -> None:
    """Run the next ``sitecustomize`` on the path, which this one hides, as Python would."""
    rest = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)


try:
    _seed()
except Exception as exc:  # say it in one line; the program runs, unseeded
    _say(f"could not seed this process ({type(exc).__name__}: {exc})")
_chain()
