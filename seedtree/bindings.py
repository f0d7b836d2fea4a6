"""The binding registry: one small controller per RNG library.

Each controller knows how to seed its library's global generator from a node (through
the widest channel the library offers: whole state words, never one small int), and how
to capture and restore that state as plain values. ``capture``/``restore``/``isolate`` and
``seed_globals`` just loop over the registry, so supporting another library is adding
one class and calling ``register``.

Captured states hold only ints, floats, lists, dicts, strings and (for torch) uint8
tensors: they save with ``torch.save`` and load with ``torch.load(weights_only=True)``,
and are JSON-serialisable when torch is not in use.
"""

from __future__ import annotations

import ctypes
import importlib.util
import random
import sys
from collections.abc import Iterable
from contextlib import ContextDecorator
from typing import Any

import numpy as np

from . import ambient
from .keys import path_from_json, path_to_json
from .tree import MT_WORDS, WORDS_NUMPY_GLOBAL, WORDS_RANDOM, WORDS_TORCH_CPU, SeedTree, torch_cpu_state

STATE_FORMAT = "seedtree.rng-state/1"


class Binding:
    """Interface of a controller. ``module`` is the library's import name; a controller is
    used only when that library is importable (and, for per-task seeding, already loaded)."""

    name: str = ""
    module: str = ""
    words: tuple[int, int] | None = None
    """``(start, count)`` of the node words this binding seeds from, if it seeds from
    words: ``seed_globals`` then expands one span for all such bindings at once."""

    def usable(self) -> bool:
        """Whether the library's global generator exists right now (e.g. a GPU is there)."""
        return True

    def seed(self, node: SeedTree) -> None:
        """Seed the library's global generator from ``node``."""
        if self.words is None:
            raise NotImplementedError
        self.seed_words(node.words(*self.words))

    def seed_words(self, words: np.ndarray) -> None:
        """Seed from this binding's ``words`` range of a node (for bindings that set ``words``)."""
        raise NotImplementedError

    def capture(self) -> Any:
        raise NotImplementedError

    def restore(self, state: Any) -> None:
        raise NotImplementedError


class PythonRandom(Binding):
    """Python's ``random`` module, seeded with 128 bits of the node."""

    name = "random"
    module = "random"
    words = (WORDS_RANDOM, 4)

    def seed_words(self, words: np.ndarray) -> None:
        random.seed(int.from_bytes(words.astype("<u4", copy=False).tobytes(), "little"))

    def capture(self) -> dict:
        version, internal, gauss_next = random.getstate()
        return {"version": version, "internal": list(internal), "gauss_next": gauss_next}

    def restore(self, state: dict) -> None:
        random.setstate((state["version"], tuple(state["internal"]), state["gauss_next"]))


class NumpyGlobal(Binding):
    """NumPy's legacy global ``RandomState`` (``np.random.rand`` & co.): its whole
    624-word MT19937 key is written from the node."""

    name = "numpy"
    module = "numpy"
    words = (WORDS_NUMPY_GLOBAL, MT_WORDS)

    def __init__(self) -> None:
        self._fast: bool | None = None  # decided on first use by a self-check
        self._key: np.ndarray | None = None  # the legacy generator's key, in place

    def seed_words(self, key: np.ndarray) -> None:
        if self._fast is None:
            self._fast = self._check_fast_path(key)
        if self._fast:
            self._write_key(key)
        else:
            np.random.set_state(("MT19937", key, MT_WORDS))

    def _write_key(self, key: np.ndarray) -> None:
        # set_state copies the key word by word in Python (~35 us). Instead: the legacy
        # seed() resets the cached Gaussian and sets the position to 624 (~2 us), then the
        # key is written in place through the bit generator's documented ctypes state address.
        np.random.seed(0)
        if self._key is None:
            address = np.random.mtrand._rand._bit_generator.ctypes.state_address
            self._key = np.ctypeslib.as_array((ctypes.c_uint32 * MT_WORDS).from_address(address))
        self._key[:] = key

    def _check_fast_path(self, key: np.ndarray) -> bool:
        saved = np.random.get_state()
        try:
            self._write_key(key)
            fast_draw = np.random.random_sample(3)
            np.random.set_state(("MT19937", key, MT_WORDS))
            ok = bool(np.array_equal(fast_draw, np.random.random_sample(3)))
        except Exception:
            ok = False
        finally:
            np.random.set_state(saved)
        return ok

    def capture(self) -> dict:
        _, key, pos, has_gauss, gauss = np.random.get_state()
        return {"key": key.tolist(), "pos": int(pos), "has_gauss": int(has_gauss), "gauss": float(gauss)}

    def restore(self, state: dict) -> None:
        key = np.asarray(state["key"], dtype=np.uint32)
        np.random.set_state(("MT19937", key, state["pos"], state["has_gauss"], state["gauss"]))


class TorchCPU(Binding):
    """torch's default CPU generator: the whole MT19937 state from the node (torch's
    ``manual_seed`` keeps only 32 bits)."""

    name = "torch"
    module = "torch"
    words = (WORDS_TORCH_CPU, MT_WORDS + 2)

    def __init__(self) -> None:
        # One state image reused for every seeding (set_state copies it), and the tensor
        # that shares its memory.
        self._image: np.ndarray | None = None
        self._tensor: Any = None

    def seed_words(self, words: np.ndarray) -> None:
        torch = sys.modules["torch"]
        if self._image is None:
            self._image = torch_cpu_state(words[:MT_WORDS], 0)
            self._tensor = torch.from_numpy(self._image)
            self._state_words = self._image[24 : 24 + 8 * MT_WORDS].view("<u8")
            self._seed_words = self._image[0:8].view("<u4")
        np.copyto(self._state_words, words[:MT_WORDS])
        np.copyto(self._seed_words, words[MT_WORDS:])  # the 64-bit initial seed, low word first
        torch.default_generator.set_state(self._tensor)

    def capture(self) -> Any:
        return sys.modules["torch"].get_rng_state()

    def restore(self, state: Any) -> None:
        torch = sys.modules["torch"]
        if not isinstance(state, torch.Tensor):
            state = torch.tensor(state, dtype=torch.uint8)
        torch.set_rng_state(state)


class TorchCUDA(Binding):
    """torch's CUDA generators: device d gets its own 64-bit seed ``node.seed_int(64, d)``
    (``manual_seed_all`` would give every device the same stream)."""

    name = "torch_cuda"
    module = "torch"

    def __init__(self) -> None:
        self._available: bool | None = None  # asked once: it does not change in a process

    def usable(self) -> bool:
        if self._available is None:
            torch = sys.modules.get("torch")
            if torch is None:
                return False
            self._available = bool(torch.cuda.is_available())
        return self._available

    def seed(self, node: SeedTree) -> None:
        torch = sys.modules["torch"]
        seeds = [node.seed_int(64, d) for d in range(torch.cuda.device_count())]

        def seed_devices() -> None:
            for device, seed in enumerate(seeds):
                torch.cuda.default_generators[device].manual_seed(seed)

        if torch.cuda.is_initialized():
            seed_devices()
        else:
            # Seeding must not create a CUDA context (that breaks fork-based workers);
            # torch queues the call until CUDA starts, as its own manual_seed_all does.
            lazy_call = getattr(torch.cuda, "_lazy_call", None)
            if lazy_call is not None:
                lazy_call(seed_devices, seed_all=True)
            else:
                seed_devices()

    def capture(self) -> Any:
        torch = sys.modules["torch"]
        if not torch.cuda.is_initialized():
            return None
        return torch.cuda.get_rng_state_all()

    def restore(self, state: Any) -> None:
        if state is not None:
            sys.modules["torch"].cuda.set_rng_state_all(state)


_REGISTRY: dict[str, Binding] = {}
_missing: list = [-1, set()]  # (len(sys.modules) when computed, registered modules not imported yet)


def register(binding: Binding) -> Binding:
    """Add (or replace) a controller; returns it, so it can be used as a class decorator's
    result or kept for later."""
    if not binding.name or not binding.module:
        raise ValueError("a Binding needs a non-empty name and module")
    _REGISTRY[binding.name] = binding
    _missing[0] = -1
    return binding


def unregister(name: str) -> None:
    """Remove a controller by name (KeyError if absent)."""
    del _REGISTRY[name]
    _missing[0] = -1


for _cls in (PythonRandom, NumpyGlobal, TorchCPU, TorchCUDA):
    register(_cls())

_installed: dict[str, bool] = {}


def _installed_module(module: str) -> bool:
    if module not in _installed:
        _installed[module] = importlib.util.find_spec(module) is not None
    return _installed[module]



def registered() -> dict[str, Binding]:
    """The registered controllers by name (a copy)."""
    return dict(_REGISTRY)


def loaded_modules() -> tuple[str, ...]:
    """The registered libraries this process has imported (what a worker should seed)."""
    return tuple(sorted({b.module for b in _REGISTRY.values() if sys.modules.get(b.module) is not None}))


def active(import_missing: bool | Iterable[str] = False) -> list[Binding]:
    """The controllers whose library is loaded and usable. ``import_missing=True`` imports
    every installed registered library first; a list of module names imports just those."""
    wanted = None if isinstance(import_missing, bool) else set(import_missing)
    result = []
    for binding in _REGISTRY.values():
        if sys.modules.get(binding.module) is None:  # never imported, or blocked (None)
            if wanted is None:
                if not (import_missing and _installed_module(binding.module)):
                    continue
            elif binding.module not in wanted:
                continue
            importlib.import_module(binding.module)
        if binding.usable():
            result.append(binding)
    return result


def seed_globals(node: SeedTree, import_missing: bool | Iterable[str] = False) -> list[str]:
    """Seed every active library's global generator from ``node``; returns their names.

    Libraries not yet imported are skipped unless named in ``import_missing`` (or it is
    True): a worker whose parent uses torch must import and seed it before the task runs,
    or a task that imports torch itself would get torch's fixed default seed, the same in
    every worker. Integrations pass the parent's ``loaded_modules()``; ``seed_everything``
    passes True.
    """
    names = globals_plan(import_missing).seed(node)
    arm_import_hook(node)
    return names


class _SeedOnImport:
    """A meta-path finder that seeds a registered library the moment it is first imported,
    from the node whose globals were bound last (``arm_import_hook``). Without it, a task
    that imports torch itself after its globals were bound would run on torch's fixed
    default seed, the same in every worker process. The state the library had on import
    is kept, so ``isolate`` can put it back."""

    def __init__(self) -> None:
        self.pending: set[str] = set()
        self.node: SeedTree | None = None
        self.fresh: dict[str, Any] = {}  # binding name -> state just after import

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name not in self.pending or self.node is None:
            return None
        self.pending.discard(name)  # the find_spec below must not come back here
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        run_module = spec.loader.exec_module

        def exec_module(module: Any) -> None:
            run_module(module)
            self.seed(name)

        spec.loader.exec_module = exec_module  # this spec's own loader object
        return spec

    def seed(self, module: str) -> None:
        node = self.node
        if node is None:
            return
        for binding in _REGISTRY.values():
            if binding.module == module and binding.usable():
                self.fresh[binding.name] = binding.capture()
                binding.seed(node)


_import_hook = _SeedOnImport()


def arm_import_hook(node: SeedTree) -> None:
    """Until ``disarm_import_hook``, seed registered libraries that are installed but not
    yet imported from ``node`` when they get imported (see ``_SeedOnImport``)."""
    if _missing[0] != len(sys.modules):  # something was imported since: look again
        _missing[0] = len(sys.modules)
        _missing[1] = {
            b.module for b in _REGISTRY.values() if sys.modules.get(b.module) is None and _installed_module(b.module)
        }
    missing = _missing[1]
    if not missing:
        _import_hook.node = None
        return
    _import_hook.pending = set(missing)
    _import_hook.node = node
    if _import_hook not in sys.meta_path:
        sys.meta_path.insert(0, _import_hook)



def disarm_import_hook() -> None:
    """Stop seeding libraries at import (a keyed task or batch calls this when done)."""
    _import_hook.node = None
    _import_hook.pending = set()


class Plan:
    """How to seed a set of bindings from one node: the span of node words that covers
    every word-seeded binding (expanded once), and each binding's slice of it. Callers
    seeding many nodes at once (a DataLoader batch) expand ``(start, count)`` for all of
    them in one vectorised call and pass each node its row."""

    def __init__(self, chosen: list[Binding]) -> None:
        self.bindings = chosen
        spans = [b.words for b in chosen if b.words is not None]
        self.start = min((lo for lo, _ in spans), default=0)
        stop = max((lo + n for lo, n in spans), default=0)
        if not spans or stop - self.start > _SPAN_LIMIT:
            self.start, stop = 0, 0
        self.count = stop - self.start
        self.steps = [
            (b, b.words[0] - self.start, b.words[0] - self.start + b.words[1]) if b.words and self.count else (b, 0, 0)
            for b in chosen
        ]

    def seed(self, node: SeedTree, words: np.ndarray | None = None) -> list[str]:
        """Seed every binding from ``node``; ``words`` are the node's words
        ``start .. start + count`` if the caller has them already."""
        if words is None and self.count:
            words = node.words(self.start, self.count)
        for binding, lo, hi in self.steps:
            if hi:
                binding.seed_words(words[lo:hi])
            else:
                binding.seed(node)
        return [b.name for b in self.bindings]


def globals_plan(import_missing: bool | Iterable[str] = False) -> Plan:
    """The plan for the bindings ``active(import_missing)`` returns now (cached)."""
    chosen = active(import_missing)
    key = tuple(chosen)
    plan = _plans.get(key)
    if plan is None:
        plan = _plans[key] = Plan(chosen)
    return plan


_plans: dict[tuple[Binding, ...], Plan] = {}
_SPAN_LIMIT = 4096  # most words expanded at once for all word-seeded bindings


def capture(names: Iterable[str] | None = None) -> dict:
    """The states of every active library's global generator and of the ambient stream."""
    state: dict[str, Any] = {"format": STATE_FORMAT}
    for binding in active():
        if names is None or binding.name in names:
            state[binding.name] = binding.capture()
    if names is None or "ambient" in names:
        saved = ambient.snapshot()
        state["ambient"] = {
            "default": _node_to_json(saved["default"]),
            "node": _node_to_json(saved["node"]),
            "state": saved["state"],
        }
    return state


def restore(state: dict) -> None:
    """Put back what ``capture`` returned. Libraries absent from ``state`` are untouched."""
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise ValueError(f"not a seedtree RNG state (expected a dict with format={STATE_FORMAT!r} from capture())")
    for name, value in state.items():
        if name in ("format", "ambient"):
            continue
        binding = _REGISTRY.get(name)
        if binding is None:
            raise ValueError(f"the state holds {name!r}, which no registered binding handles; register it first")
        if sys.modules.get(binding.module) is not None or _installed_module(binding.module):
            importlib.import_module(binding.module)
            binding.restore(value)
    if "ambient" in state:
        saved = state["ambient"]
        ambient.restore_snapshot({
            "default": _node_from_json(saved["default"]),
            "node": _node_from_json(saved["node"]),
            "state": saved["state"],
        })


def _node_to_json(node: SeedTree | None) -> dict | None:
    return None if node is None else {"entropy": str(node.entropy), "path": path_to_json(node.path)}


def _node_from_json(data: dict | None) -> SeedTree | None:
    return None if data is None else SeedTree(int(data["entropy"]), path_from_json(data["path"]))


class isolate(ContextDecorator):
    """Capture every RNG state on entry and restore it on exit (also on error); works as
    ``with seedtree.isolate():`` and as ``@seedtree.isolate()`` (re-entrant). A library
    first imported inside the block is put back to the state it had on import.
    ``ambient=False`` leaves the ambient stream alone (integrations whose tasks bind their
    own nodes use it)."""

    def __init__(self, ambient: bool = True) -> None:
        self._names = None if ambient else list(_REGISTRY)
        self._saved: list[dict] = []

    def __enter__(self) -> isolate:
        self._saved.append(capture(self._names))
        return self

    def __exit__(self, *exc: object) -> None:
        saved = self._saved.pop()
        restore(saved)
        for binding in active():
            if binding.name not in saved and binding.name in _import_hook.fresh:
                binding.restore(_import_hook.fresh[binding.name])
