"""The registry of RNG-library controllers: one instance per registered class.

``REGISTRY`` holds the controllers (``LibController`` subclasses: the built-in ones for
``random``, NumPy's global and torch, and any a user registers) and the caches that make
per-sample seeding cheap; ``capture``, ``restore``, ``isolate`` and ``seed_globals`` just
loop over it, so supporting another library is writing one subclass and calling
``register``.

A controller's ``capture()`` is its library's own form (torch's a uint8 tensor);
``seedtree.capture()`` turns every part into plain values (torch's into lists of byte
values), so what users save is JSON and ``torch.save`` alike.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

from .lib_numpy import NumpyGlobal
from .lib_random import PythonRandom
from .lib_torch import TorchCPU, TorchCUDA
from .libcontroller import ImportMissing, LibController, Seeders
from .plan import Batch, Plan

__all__ = [
    "REGISTRY",
    "Batch",
    "ImportMissing",
    "LibController",
    "NumpyGlobal",
    "Plan",
    "PythonRandom",
    "Registry",
    "Seeders",
    "TorchCPU",
    "TorchCUDA",
    "register",
    "unregister",
]


def _check_slots(reader: LibController, writer: LibController) -> None:
    """Refuse ``reader`` reading an expansion word that ``writer`` overwrites in batches."""
    if reader.words is None:
        return
    start, count = reader.words
    clash = [w for w in writer.slots if start <= w < start + count]
    if clash:
        raise ValueError(
            f"controller {reader.name!r} reads globals word {clash[0]}, where batches hold {writer.name!r}'s "
            f"position (seedtree.core.layout): give it words outside {sorted(writer.slots)}"
        )


class Registry:
    """The registered controllers by name, and the caches built from them (which modules
    are installed, which registered modules are not imported yet, seeding plans). Any
    change of the registration empties the caches."""

    def __init__(self) -> None:
        self._controllers: dict[str, LibController] = {}
        self._installed: dict[str, bool] = {}
        self._plans: dict[tuple[LibController, ...], Plan] = {}
        # len(sys.modules) when ``_missing`` was computed; -1: not yet. Any value that
        # len(sys.modules) never takes means the same, and ``_missing`` is only read after
        # it is computed.
        self._missing_at = -1  # pragma: no mutate
        self._missing: frozenset[str] = frozenset()  # pragma: no mutate

    def register(self, controller: LibController) -> LibController:
        """Add (or replace, by name) a controller; returns it."""
        if not isinstance(controller, LibController):
            raise TypeError(f"register() takes a LibController instance, got {type(controller).__name__}")
        if not controller.name or not controller.module:
            raise ValueError("a controller needs a non-empty name and module")
        for other in self._controllers.values():
            if other.name != controller.name:
                _check_slots(controller, other)
                _check_slots(other, controller)
        self._controllers[controller.name] = controller
        self._plans.clear()
        self._missing_at = -1  # pragma: no mutate (any value len(sys.modules) never takes)
        return controller

    def unregister(self, name: str) -> None:
        """Remove the controller registered under ``name``."""
        del self._controllers[name]
        self._plans.clear()
        self._missing_at = -1  # pragma: no mutate (any value len(sys.modules) never takes)

    def get(self, name: str) -> LibController | None:
        """The controller registered under ``name``, or None."""
        return self._controllers.get(name)

    def all(self) -> dict[str, LibController]:
        """The registered controllers by name (a copy)."""
        return dict(self._controllers)

    def installed(self, module: str) -> bool:
        """Whether ``module`` can be imported here (looked up once, then remembered)."""
        if module not in self._installed:
            self._installed[module] = importlib.util.find_spec(module) is not None
        return self._installed[module]

    def loaded_modules(self) -> tuple[str, ...]:
        """The registered libraries this process has imported (what a worker should seed)."""
        return tuple(sorted({c.module for c in self._controllers.values() if sys.modules.get(c.module) is not None}))

    def missing_modules(self) -> frozenset[str]:
        """Registered libraries that are installed but not imported yet (recomputed only
        after new imports)."""
        if self._missing_at != len(sys.modules):
            self._missing_at = len(sys.modules)  # pragma: no mutate - a cache key: any other only recomputes
            self._missing = frozenset(
                c.module
                for c in self._controllers.values()
                if sys.modules.get(c.module) is None and self.installed(c.module)
            )
        return self._missing

    def active(self, import_missing: ImportMissing = False) -> list[LibController]:
        """The controllers whose library is loaded and usable. ``import_missing=True``
        imports every installed registered library first; a collection of module names
        imports just those."""
        wanted = None if isinstance(import_missing, bool) else set(import_missing)
        result = []
        for controller in self._controllers.values():
            if sys.modules.get(controller.module) is None:  # never imported, or blocked (None)
                if wanted is None:
                    if not (import_missing and self.installed(controller.module)):
                        continue
                elif controller.module not in wanted:
                    continue
                importlib.import_module(controller.module)
            if controller.usable():
                result.append(controller)
        return result

    def plan(self, import_missing: ImportMissing = False) -> Plan:
        """The (cached) plan for the controllers ``active(import_missing)`` returns now."""
        chosen = self.active(import_missing)
        key = tuple(chosen)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = Plan(chosen)
        return plan


REGISTRY = Registry()
for _cls in (PythonRandom, NumpyGlobal, TorchCPU, TorchCUDA):
    REGISTRY.register(_cls())


def register(controller: LibController) -> LibController:
    """Add (or replace, by name) a controller; returns it."""
    return REGISTRY.register(controller)


def unregister(name: str) -> None:
    """Remove a controller by name (KeyError if absent)."""
    REGISTRY.unregister(name)
