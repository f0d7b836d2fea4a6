"""Generators that objects own, found once and re-keyed for every work item.

Binding the global RNGs does nothing for an object that owns a generator of its own: a
MONAI ``Randomizable`` draws from its ``R`` (a ``RandomState``), an albumentations 2
pipeline from its ``random_generator`` and ``py_random``. After a fork every DataLoader
worker holds a copy of the same state, so unless each is re-keyed per sample two workers
repeat each other's draws and the results depend on the worker layout.
``OwnedGenerators(dataset)`` finds those objects and ``reseed(node)`` re-keys every one
from the work item's node; seedtree's loaders call it before each sample.

**What is found.** The roots (a dataset; a stream's reader and transform) are searched
depth first, each object once (the first path that reaches it): an object's attributes
(``__dict__`` in insertion order, then ``__slots__``), lists and tuples by index, dict
values in insertion order, a bound method's ``__self__``, a ``functools.partial``'s
function and arguments, a function's closure cells. Up to ``MAX_DEPTH`` levels, containers
of up to ``MAX_ITEMS`` items (longer ones hold data, not pipelines) and ``MAX_OBJECTS``
objects in all; sets (their order differs between processes), module globals, arrays and
tensors are not searched. An object found is one of:

- an object whose class has a ``seedtree_reseed(node)`` method: that is called, and the
  object is not searched further (it re-keys what it holds);
- a MONAI ``Randomizable`` (``Compose`` included): it gets a ``RandomState`` of its own,
  and its attributes are searched on (MONAI's ``Compose.set_random_state`` hands its
  children 32-bit seeds; here each child is keyed in full);
- an albumentations 2 ``Compose`` (any ``BaseCompose``) or transform with
  ``set_random_state``: it gets a ``numpy.random.Generator`` and a ``random.Random``,
  which it shares with the transforms inside (albumentations' own design); not searched
  further.

A root with a ``seedtree_reseed`` method (looked up on the object, as before this search
existed) is called with the node itself and not searched. A bare generator found anywhere
else (``numpy.random.Generator``, ``RandomState``, ``random.Random``, ``torch.Generator``)
cannot be re-keyed safely (it may be shared with other code): it is reported once with an
``UnkeyedGeneratorWarning`` naming its path (the global generators themselves, which the
integrations bind per item, are not).

**The streams.** The k-th object found (k = 0, 1, ... in the order above, numbered across
all roots) draws from ``node / "owned" / k``, so every object has its own stream, distinct
from the node's own (``seedtree.rng()``) and from every other sample's. The order depends
only on how the objects are built, so it is the same in every process, after pickling
(spawned workers) and after ``copy.deepcopy``. With ``o = node / "owned" / k``:

- a MONAI object's ``R`` has the 624-word MT19937 state seedtree gives NumPy's global
  generator under ``o``: ``R.get_state()`` equals
  ``("MT19937", o.globals_words(0, 624), 0, 0, 0.0)`` (never a 32-bit seed);
- an albumentations pipeline gets ``set_random_state(g, r)`` where ``g`` draws what
  ``o.numpy()`` draws and ``r`` what ``o.random()`` draws;
- a ``seedtree_reseed`` object is called with ``o``.

**Cost.** The search runs once per ``OwnedGenerators`` per process (lazily, at the first
``reseed``; a pickled or deep-copied finder searches again where it lands). Per item, the
words of every found object come from one vectorised derivation, and each generator's
state is written through its library's own setter (no raw memory: that lives in
``seedtree.runtime.controllers`` alone; a MONAI object is handed its ``RandomState`` again
only when something replaced it): tens of microseconds per object per sample, far below
any augmentation.
Not thread-safe: one finder re-keys one item at a time (MONAI's transforms are not
thread-safe either).
"""

from __future__ import annotations

import functools
import os
import random
import sys
import types
import warnings
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import numpy as np

from ..core.layout import (
    MT_FRESH,
    MT_WORDS,
    WORDS_GLOBALS_KEY,
    WORDS_NUMPY_GLOBAL,
    WORDS_RANDOM,
    expand_globals,
    python_random_state,
)
from ..core.tree import SeedTree

__all__ = [
    "MAX_DEPTH",
    "MAX_ITEMS",
    "MAX_OBJECTS",
    "OWNED_KEY",
    "RESEED_METHOD",
    "Owner",
    "OwnedGenerators",
    "UnkeyedGeneratorWarning",
    "reseed_owned",
]

RESEED_METHOD = "seedtree_reseed"
"""The hook: an object with a method of this name is called as ``obj.seedtree_reseed(node)``."""
OWNED_KEY = "owned"
"""Object k found in a work item's roots draws from ``node / OWNED_KEY / k``."""
MAX_DEPTH = 16
"""Levels below a root that are searched."""
MAX_ITEMS = 1000
"""Lists, tuples and dicts longer than this are data and are not searched."""
MAX_OBJECTS = 20_000
"""Objects looked at per search; a search that stops here says so with a warning."""

# Objects of these packages hold data (arrays, frames, files), never a pipeline.
_DATA_PACKAGES = frozenset({"numpy", "pandas", "pyarrow", "polars", "h5py", "zarr", "xarray"})
_LEAVES = (
    str,
    bytes,
    bytearray,
    int,
    float,
    complex,
    bool,
    type(None),
    range,
    slice,
    memoryview,
    os.PathLike,
    SeedTree,
)
_OPAQUE = (type, types.ModuleType, types.BuiltinFunctionType, types.CodeType, types.FrameType)


class UnkeyedGeneratorWarning(RuntimeWarning):
    """A dataset (or reader, or transform) holds a bare generator that seedtree cannot
    re-key per sample: forked workers share its stream, and what it draws depends on the
    worker layout. Draw from ``seedtree.rng()`` instead, or give the object holding it a
    ``seedtree_reseed(node)`` method."""


class Owner(NamedTuple):
    """One object ``OwnedGenerators`` re-keys: its stream key (``node / "owned" / key``;
    None for a root's own hook, which gets the node itself), where it was found, and how
    it is re-keyed (``"root hook"``, ``"seedtree_reseed"``, ``"monai"``, ``"albumentations"``)."""

    key: int | None
    path: str
    kind: str


# -- writing a generator's state ------------------------------------------------------------
# Through the libraries' own setters only: raw-memory writes live in one module
# (seedtree.runtime.controllers), not here.


class _LegacyState:
    """A ``RandomState`` over MT19937 whose 624-word key is rewritten per item."""

    __slots__ = ("rs",)

    def __init__(self) -> None:
        # any MT19937 (None makes one as well): its key is written before every use
        self.rs = np.random.RandomState(np.random.MT19937())  # pragma: no mutate

    def write(self, key: np.ndarray) -> None:
        self.rs.set_state(("MT19937", key, MT_FRESH, 0, 0.0))  # also drops a cached Gaussian


class _PyRandom:
    """A ``random.Random`` whose whole state is rewritten per item."""

    __slots__ = ("r",)

    def __init__(self) -> None:
        self.r = random.Random()

    def write(self, words: np.ndarray) -> None:
        self.r.setstate(python_random_state(words))


# -- what is re-keyed, per kind ---------------------------------------------------------------


# Each is called per item with the node's "owned" child and the globals expansions of the
# objects that need one (None if none does); ``row`` is this object's row in them.


class _Hook:
    __slots__ = ("obj", "key")

    def __init__(self, obj: Any, key: int) -> None:
        self.obj, self.key = obj, key

    def __call__(self, owned: SeedTree, rows: np.ndarray | None) -> None:
        getattr(self.obj, RESEED_METHOD)(owned / self.key)


class _Monai:
    __slots__ = ("obj", "row", "state")

    def __init__(self, obj: Any, row: int) -> None:
        self.obj, self.row = obj, row  # its key's words are in its row
        self.state = _LegacyState()

    def __call__(self, owned: SeedTree, rows: np.ndarray | None) -> None:
        rs = self.state.rs
        if self.obj.R is not rs:  # every Randomizable has an R (a class attribute at least)
            # Handed over once per process (and again if something replaced it). A Compose
            # hands its children seeds drawn from rs here; they are found after it and keyed
            # in full, and rs itself is written below, after the hand-over drew from it.
            self.obj.set_random_state(state=rs)
        assert rows is not None
        row = rows[self.row]
        # NumPy keys with the first 624 words of a longer key and the slice starts at 0, so a
        # longer slice would be the same key:
        key = row[WORDS_NUMPY_GLOBAL : WORDS_NUMPY_GLOBAL + MT_WORDS]  # pragma: no mutate
        self.state.write(key)


class _Albumentations:
    __slots__ = ("obj", "key", "row", "py")

    def __init__(self, obj: Any, key: int, row: int) -> None:
        self.obj, self.key, self.row = obj, key, row
        self.py = _PyRandom()

    def __call__(self, owned: SeedTree, rows: np.ndarray | None) -> None:
        assert rows is not None
        row = rows[self.row]
        gen = (owned / self.key).numpy()
        self.py.write(row[WORDS_RANDOM : WORDS_RANDOM + MT_WORDS])
        # Every item: the pipeline hands the pair to each of its transforms (cheap).
        self.obj.set_random_state(gen, self.py.r)


_Entry = _Hook | _Monai | _Albumentations


# -- the search -----------------------------------------------------------------------------


class _Kinds:
    """The classes the search recognises, read from the modules already imported (an
    object of a library that is not imported cannot exist)."""

    def __init__(self) -> None:
        monai = sys.modules.get("monai.transforms.transform")
        self.randomizable: type | None = getattr(monai, "Randomizable", None)
        composition = sys.modules.get("albumentations.core.composition")
        interface = sys.modules.get("albumentations.core.transforms_interface")
        albu = tuple(
            c
            for c in (getattr(composition, "BaseCompose", None), getattr(interface, "BasicTransform", None))
            if isinstance(c, type)
        )
        self.albumentations: tuple[type, ...] = albu
        generators: list[type] = [np.random.Generator, np.random.RandomState, np.random.BitGenerator, random.Random]
        torch = sys.modules.get("torch")
        if torch is not None and isinstance(getattr(torch, "Generator", None), type):
            generators.append(torch.Generator)
            self.tensor: type | None = torch.Tensor
        else:
            self.tensor = None
        self.generators = tuple(generators)
        # The global generators are bound per sample already: holding one is fine.
        self.bound = {id(np.random.mtrand._rand), id(random._inst)}
        if torch is not None:  # (a torch still being imported may lack its default generator)
            self.bound.add(id(getattr(torch, "default_generator", None)))


def _children(obj: Any, skip: str | None) -> Iterator[tuple[str, Any]]:
    """``(path suffix, child)`` of one object, in a fixed order."""
    if isinstance(obj, (list, tuple)):
        if len(obj) <= MAX_ITEMS:
            yield from ((f"[{i}]", v) for i, v in enumerate(obj))
        return
    if isinstance(obj, dict):
        if len(obj) <= MAX_ITEMS:
            yield from ((f"[{k!r}]", v) for k, v in list(obj.items()))
        return
    if isinstance(obj, types.MethodType):
        yield ".__self__", obj.__self__
        return
    if isinstance(obj, functools.partial):
        yield ".func", obj.func
        yield from ((f".args[{i}]", v) for i, v in enumerate(obj.args))
        yield from ((f".keywords[{k!r}]", v) for k, v in obj.keywords.items())
        return
    if isinstance(obj, types.FunctionType):
        for i, cell in enumerate(obj.__closure__ or ()):
            try:
                yield f".__closure__[{i}]", cell.cell_contents
            except ValueError:  # an empty cell
                continue
        return
    try:
        attrs = object.__getattribute__(obj, "__dict__")
    except Exception:
        attrs = None  # pragma: no mutate - any value that is not a dict is skipped alike
    if isinstance(attrs, dict):
        yield from ((f".{k}", v) for k, v in list(attrs.items()) if k != skip)
    for cls in type(obj).__mro__:
        slots = cls.__dict__.get("__slots__", ())
        for name in (slots,) if isinstance(slots, str) else slots:
            if name in ("__dict__", "__weakref__") or name == skip:
                continue
            try:
                yield f".{name}", object.__getattribute__(obj, name)
            except Exception:
                continue


def _searched(obj: Any, kinds: _Kinds) -> bool:
    """Whether an object may hold owners (not a leaf, data, a class or a module)."""
    if isinstance(obj, _LEAVES) or isinstance(obj, _OPAQUE):
        return False
    if isinstance(obj, (set, frozenset, np.ndarray, np.generic)):
        return False
    if kinds.tensor is not None and isinstance(obj, kinds.tensor):
        return False
    module = str(type(obj).__module__)  # a class may set its __module__ to None
    return module.partition(".")[0] not in _DATA_PACKAGES


class _Found:
    """What one search found."""

    __slots__ = (
        "root_hooks",
        "entries",
        "owners",
        "unkeyed",
        "truncated",
        "globals_keys",
        "single",
    )

    def __init__(self) -> None:
        self.root_hooks: list[Callable[[SeedTree], Any]] = []
        self.entries: list[_Entry] = []
        self.owners: list[Owner] = []
        self.unkeyed: list[str] = []
        self.truncated = False
        self.globals_keys: np.ndarray | None = None  # pragma: no mutate (set by every search)
        self.single: int | None = None  # the key, when a single object needs words


def _search(roots: tuple[Any, ...], names: tuple[str, ...]) -> _Found:
    kinds = _Kinds()
    found = _Found()
    seen: set[int] = set()
    visited = 0
    stack: list[tuple[Any, str, int]] = []
    root_owners = []
    globals_keys: list[int] = []  # of the objects keyed from a globals expansion: object k's row is its index
    for root, name in zip(roots, names, strict=True):  # pragma: no mutate - __init__ checked the lengths
        hook = getattr(root, RESEED_METHOD, None)  # None (a skipped root) has no hook
        if callable(hook):  # looked up on the object (a wrapper may forward it), as before the search
            found.root_hooks.append(hook)
            root_owners.append(Owner(None, name or "<root>", "root hook"))
            seen.add(id(root))
        elif root is not None:
            stack.insert(0, (root, name, 0))  # the stack pops from the end: the first root first
    while stack:
        obj, path, depth = stack.pop()
        if id(obj) in seen or id(obj) in kinds.bound:
            continue
        if isinstance(obj, kinds.generators):  # before the data-package check: numpy's are generators
            seen.add(id(obj))
            cls = type(obj)
            found.unkeyed.append(f"{path.lstrip('.') or '<root>'} ({cls.__module__}.{cls.__qualname__})")
            continue
        if not _searched(obj, kinds):
            continue
        seen.add(id(obj))
        visited += 1
        if visited > MAX_OBJECTS:
            found.truncated = True
            break
        shown = path.lstrip(".") or "<root>"
        key = len(found.entries)
        skip = None  # pragma: no mutate - no attribute is named "" either
        cls = type(obj)
        if callable(getattr(cls, RESEED_METHOD, None)):
            found.entries.append(_Hook(obj, key))
            found.owners.append(Owner(key, shown, "seedtree_reseed"))
            continue
        if kinds.randomizable is not None and isinstance(obj, kinds.randomizable):
            found.entries.append(_Monai(obj, len(globals_keys)))
            globals_keys.append(key)
            found.owners.append(Owner(key, shown, "monai"))
            skip = "R"  # its generator, replaced by the one handed over; its children are searched on
        elif kinds.albumentations and isinstance(obj, kinds.albumentations):
            # albumentations 2 has set_random_state on every transform (1.x used the globals)
            if callable(getattr(obj, "set_random_state", None)):
                found.entries.append(_Albumentations(obj, key, len(globals_keys)))
                globals_keys.append(key)
                found.owners.append(Owner(key, shown, "albumentations"))
            continue
        if depth >= MAX_DEPTH:
            continue
        children = list(_children(obj, skip))
        for suffix, child in reversed(children):
            if id(child) not in seen:  # speed only: a seen object is skipped when popped
                stack.append((child, path + suffix, depth + 1))
    found.owners = root_owners + found.owners
    found.globals_keys = np.array(globals_keys) if globals_keys else None
    if len(globals_keys) == 1:
        # Speed only: without it the vectorised derivation gives the same row.
        found.single = globals_keys[0]  # pragma: no mutate
    return found


class OwnedGenerators:
    """The generators ``roots`` own, found once (lazily, per process) and re-keyed by
    ``reseed(node)``; see the module's documentation for what is found and which stream
    each gets. ``names`` label the roots in ``found`` (default: none for one root,
    ``[i]`` for several). ``None`` roots are skipped."""

    def __init__(self, *roots: Any, names: tuple[str, ...] | None = None) -> None:
        if names is not None and len(names) != len(roots):
            raise ValueError(f"OwnedGenerators got {len(roots)} roots but {len(names)} names")
        self.roots = roots
        self.names = (
            names if names is not None else ("",) if len(roots) == 1 else tuple(f"[{i}]" for i in range(len(roots)))
        )
        self._found: _Found | None = None

    def _search(self) -> _Found:
        found = self._found
        if found is None:
            found = self._found = _search(self.roots, self.names)
            if found.unkeyed:
                warnings.warn(
                    f"seedtree cannot re-key {len(found.unkeyed)} generator(s) held here per sample: "
                    f"{', '.join(found.unkeyed)}. Forked workers share their streams and what they draw depends on "
                    "the worker layout: draw from seedtree.rng() instead, or give the object holding one a "
                    "seedtree_reseed(node) method",
                    UnkeyedGeneratorWarning,
                    stacklevel=3,
                )
            if found.truncated:
                warnings.warn(
                    f"seedtree stopped looking for generators after {MAX_OBJECTS} objects; anything owning one "
                    "further in is not re-keyed (give the dataset a seedtree_reseed(node) method)",
                    UnkeyedGeneratorWarning,
                    stacklevel=3,
                )
        return found

    @property
    def found(self) -> tuple[Owner, ...]:
        """What is re-keyed, in order: root hooks first, then object k at position k."""
        return tuple(self._search().owners)

    @property
    def unkeyed(self) -> tuple[str, ...]:
        """Paths of the bare generators found, which are not re-keyed (and were warned about)."""
        return tuple(self._search().unkeyed)

    def __len__(self) -> int:
        return len(self._search().owners)

    def __bool__(self) -> bool:
        return len(self) > 0

    def reseed(self, node: SeedTree) -> None:
        """Re-key everything found from ``node``: each root hook with ``node``, object k
        with ``node / "owned" / k``."""
        found = self._found or self._search()
        for hook in found.root_hooks:
            hook(node)
        entries = found.entries
        if not entries:
            return
        owned = node / OWNED_KEY
        g = found.globals_keys
        if found.single is not None:  # one object to key: its node, derived once (a third of the vectorised cost)
            rows: np.ndarray | None = expand_globals((owned / found.single).words(WORDS_GLOBALS_KEY, 4)[None, :])
        else:  # the 4-word globals key of each (states' default n_words)
            rows = None if g is None else expand_globals(owned.states(g, start=WORDS_GLOBALS_KEY))
        for entry in entries:
            entry(owned, rows)

    def __reduce__(self) -> tuple[Any, ...]:
        # The search result holds this process's objects: a copy (a spawned worker's, a
        # deep copy) searches its own roots again when first used.
        return (_rebuild, (self.roots, self.names))

    def __repr__(self) -> str:
        if self._found is None:
            return f"OwnedGenerators({len(self.roots)} root(s), not searched yet)"
        return f"OwnedGenerators({', '.join(f'{o.key}:{o.path} ({o.kind})' for o in self._found.owners)})"


def _rebuild(roots: tuple[Any, ...], names: tuple[str, ...]) -> OwnedGenerators:
    return OwnedGenerators(*roots, names=names)


def reseed_owned(obj: Any, node: SeedTree) -> OwnedGenerators:
    """Search ``obj`` and re-key what it owns from ``node`` once (a worker's start);
    returns the finder, to keep for later items (``finder.reseed(node)``)."""
    finder = OwnedGenerators(obj)
    finder.reseed(node)
    return finder
