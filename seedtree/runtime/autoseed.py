"""Seeding an unmodified Python program run by ``seedtree run`` or ``seedtree verify``.

The launcher puts the folder ``SITE_DIR`` (it holds one file, ``sitecustomize.py``) first
on the command's ``PYTHONPATH`` and sets ``SEEDTREE_AUTO_SEED=root``. Python imports that
``sitecustomize`` before the program's first line; it seeds the process as below, then
runs the ``sitecustomize`` it hides, if there is one. Which stream each Python process of
the command gets, so that no two share one and every run repeats:

- **the command** (the first Python process of each line of descent from the launcher;
  a shell script that runs two Python programs gives each the root, as two ``seedtree
  run`` would): the root itself, exactly as ``seed_everything()`` would seed it. A library
  imported later (``import torch``) is seeded from the root at its import.
- **a multiprocessing child** (start method fork, spawn or forkserver: ``Process``,
  ``Pool`` and ``concurrent.futures`` workers): ``parent / "process" / *identity``, its
  multiprocessing identity (1 for the first process its parent created, ``(1, 2)`` for the
  second one that process created, ...), fixed by the order of creation, never by a pid
  or by timing. It is seeded when the child starts its work, so a spawned child's re-import
  of the main module runs before that, unseeded. A seedtree integration's worker
  initialiser then binds the worker's own node, as without the launcher.
- **a process forked by ``os.fork``** outside multiprocessing: ``node / "fork" / n`` as
  after ``seed_everything`` (n counts the forks of the parent).
- **any other Python process the program starts** (``subprocess``, ``os.exec*``): left
  alone, and so is everything it starts: Python seeds it from OS entropy as usual, and
  ``seedtree.rng()`` there is unbound until it seeds itself. (It cannot be given a stream
  of its own deterministically, and it must not get its parent's.)

Every stream given is recorded (``auto_seed``, ``auto_seed/process/<identity>``), so a
``--record`` manifest lists them. ``--no-auto-seed`` turns all of this off.
"""

from __future__ import annotations

import json
import multiprocessing
import multiprocessing.util
import os
import sys
from pathlib import Path

from ..core.codec import node_from_json, node_to_json
from ..core.tree import SeedTree
from .seeding import fork_base, root_from_env, seed_process

__all__ = ["ENV_AUTO_SEED", "MARK_OFF", "MARK_PARENT", "MARK_ROOT", "SITE_DIR", "node", "start_child", "start_root"]

ENV_AUTO_SEED = "SEEDTREE_AUTO_SEED"
"""``root`` (set by the launcher: seed this process from ``SEEDTREE_ENTROPY``),
``parent:<node JSON>`` (set by a seeded process for what it starts), ``off`` (left alone).
``sitecustomize.py`` spells the same values: it runs before seedtree may be imported."""
MARK_ROOT = "root"
MARK_PARENT = "parent:"
MARK_OFF = "off"
SITE_DIR = Path(__file__).resolve().parent / "autoseed_site"
"""The folder the launcher puts first on ``PYTHONPATH``: it holds only ``sitecustomize.py``."""


class _Seeded:
    """This process's node once seeded, and in a child forked from a seeded process the
    parent's node until the child is seeded as a multiprocessing child. (The
    multiprocessing after-start registry keeps only a weak reference to it: the module
    keeps the strong one.)"""

    node: SeedTree | None = None
    parent: SeedTree | None = None


_SEEDED = _Seeded()
_registered = False


def node() -> SeedTree | None:
    """The node the launcher's seeding gave this process (None: not seeded)."""
    return _SEEDED.node


def start_root() -> SeedTree | None:
    """Seed this process (the command) from the root ``SEEDTREE_ENTROPY`` hands over.
    Without a usable root it says so on stderr and leaves the process alone."""
    try:
        root = root_from_env()
    except ValueError as exc:
        root, why = None, str(exc)
    else:
        why = "SEEDTREE_ENTROPY is not set"
    if root is None:
        _say(f"{why}, so this Python process is not seeded")
        os.environ[ENV_AUTO_SEED] = MARK_OFF
        return None
    _seed(root, "auto_seed")
    return root


def start_child(mark: str) -> SeedTree | None:
    """In a spawned or forkserver multiprocessing child starting its work: seed it from
    ``parent / "process" / *identity``, ``mark`` holding the parent's node. Does nothing
    in a process already seeded or given its parent's node by a fork (the after-start hook
    the parent registered seeds that one)."""
    if _SEEDED.node is not None or _SEEDED.parent is not None:
        return None
    try:
        parent = node_from_json(json.loads(mark.removeprefix(MARK_PARENT)))
    except (ValueError, TypeError) as exc:  # not JSON, not a node, or a key no node has
        _say(f"{ENV_AUTO_SEED} is damaged ({exc}), so this worker process is not seeded")
        os.environ[ENV_AUTO_SEED] = MARK_OFF
        return None
    return _seed_as_child(parent)


def _seed_as_child(parent: SeedTree) -> SeedTree | None:
    identity = tuple(multiprocessing.current_process()._identity)
    if not identity:  # not a multiprocessing child after all: leave it alone
        os.environ[ENV_AUTO_SEED] = MARK_OFF
        return None
    child = parent.child("process", *identity)
    _seed(child, "auto_seed/process/" + ".".join(str(i) for i in identity))
    return child


def _after_os_fork() -> None:
    """In any forked child of a seeded process, after ``seed_process``'s own fork hook gave
    it ``node / "fork" / n``: that node is now this process's, and what it starts derives
    from it (a forked child continues its parent's multiprocessing counter, so deriving
    from the parent's node would repeat the parent's children's streams)."""
    if _SEEDED.node is not None:
        _SEEDED.parent, _SEEDED.node = _SEEDED.node, fork_base()
        if _SEEDED.node is not None:
            _mark(_SEEDED.node)


def _after_start(seeded: _Seeded) -> None:
    """Multiprocessing runs this in a child forked from a seeded process as the child
    starts its work: it gets ``parent / "process" / *identity`` like a spawned one."""
    parent = seeded.parent
    if parent is None:
        return
    seeded.parent = None
    try:
        _seed_as_child(parent)
    except Exception as exc:  # multiprocessing would swallow it silently
        _say(f"could not seed this worker process ({type(exc).__name__}: {exc})")


def _seed(node: SeedTree, record_as: str) -> None:
    global _registered
    seed_process(node, record_as)  # registers its fork hook before ours, so ours runs after it
    _SEEDED.node, _SEEDED.parent = node, None
    _mark(node)
    if not _registered:  # fork children inherit both registrations
        multiprocessing.util.register_after_fork(_SEEDED, _after_start)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_after_os_fork)
        _registered = True


def _mark(node: SeedTree) -> None:
    """What the Python processes this one starts from now on read."""
    os.environ[ENV_AUTO_SEED] = MARK_PARENT + json.dumps(node_to_json(node))


def _say(text: str) -> None:
    print(f"seedtree (auto-seed): {text}; pass --no-auto-seed to run it unseeded", file=sys.stderr)
