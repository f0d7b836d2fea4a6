"""The abstract controller of one RNG library's global generator (``LibController``).

Each controller knows how to seed its library's global generator from a node (through the
widest channel the library offers: whole state words, never one small int), and how to
capture and restore that state as plain values. Supporting another library is writing one
subclass and registering it (``seedtree.register``); the built-in ones are in
``lib_random``, ``lib_numpy`` and ``lib_torch``, the registry in ``controllers``.
"""

from __future__ import annotations

import functools
import pickle
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from ..core.tree import SeedTree

__all__ = ["ImportMissing", "LibController", "Seeders"]

ImportMissing = bool | Iterable[str]
"""Which registered libraries that are not imported yet to import before seeding: True
means every installed one, a collection names them, False none."""


class LibController(ABC):
    """One RNG library's global generator. Subclasses set ``name`` (unique) and ``module``
    (the import name); a controller is used only while its module is imported and
    ``usable()``.

    ``words = (start, count)`` says which words of a node's globals expansion the
    controller seeds from (see ``seedtree.core.layout``); controllers that set it
    implement ``seed_words``, and seeding many of them (for many nodes) costs one
    vectorised expansion. Others override ``seed``.
    """

    name: str = ""
    module: str = ""
    words: tuple[int, int] | None = None
    slots: tuple[int, ...] = ()
    """Words of ``words`` that a batch buffer holds this controller's position in, not
    the expansion's word (the controller's ``refresh`` writes it); no other controller
    may read them."""

    def usable(self) -> bool:
        """Whether the library's global generator exists right now (e.g. a GPU is there)."""
        return True

    def seed(self, node: SeedTree) -> None:
        """Seed the library's global generator from ``node``."""
        if self.words is None:
            raise NotImplementedError(f"{type(self).__name__} sets no words: override seed()")
        self.seed_words(node.globals_words(*self.words))

    def seed_words(self, words: np.ndarray) -> None:
        """Seed from this controller's ``words`` range of a node."""
        raise NotImplementedError(f"{type(self).__name__} sets no words: it seeds through seed()")

    def row_seeders(self, rows: np.ndarray) -> tuple[Callable[[], None] | None, list[Seeders]]:
        """For a batch buffer ``rows`` (n, this controller's word count; refilled batch
        after batch in place): ``(refresh, seeders)``, where ``refresh()`` runs once after
        each refill and calling each of ``seeders[j]`` in turn seeds from row j (the same
        state as ``seed_words(rows[j])``). Override to do per-batch work vectorised, and
        to seed a row with a few C-level calls. Buffers are pooled in power-of-two sizes:
        a batch fills only its first rows, and ``refresh`` must accept stale or
        uninitialised words in the others (no seeder reads them)."""
        return None, [(functools.partial(self.seed_words, rows[j]),) for j in range(len(rows))]

    def target(self) -> object:
        """The object whose state this controller's row seeders write, as the library
        holds it now (a library may swap its generator object: then seeders made for
        the old one would seed nothing). A pooled batch made for another target is
        rebuilt."""
        return None

    def snapshot(self) -> Any:
        """The state in whatever form ``put_back`` restores fastest (``isolate`` uses
        these; ``capture`` is the portable form)."""
        return self.capture()

    def put_back(self, snapshot: Any) -> None:
        """Restore what ``snapshot`` returned."""
        self.restore(snapshot)

    def fingerprint(self) -> Any:
        """A value, compared with ``==``, that changes whenever the global generator draws
        or is seeded (equal fingerprints: no draw in between, but for a chance of about
        2**-64 in the built-in controllers). It only reads: it is safe to take on any
        thread while others draw, and cheap (a threaded map takes one per chunk of tasks
        to refuse tasks that draw from the shared globals). None means "no state yet"
        (e.g. CUDA not started). The base pickles ``capture()``."""
        return pickle.dumps(self.capture())

    @abstractmethod
    def capture(self) -> Any:
        """The generator's state as plain values (or a torch tensor)."""

    @abstractmethod
    def restore(self, state: Any) -> None:
        """Put back a state that ``capture`` returned."""

    def validate(self, state: Any) -> None:  # noqa: B027  (optional: the base accepts what capture() gave)
        """Check that ``state`` is one ``restore`` accepts, without changing anything;
        raise ValueError naming the problem otherwise. ``seedtree.restore()`` validates
        every part of a captured state before it applies any, so a damaged state changes
        nothing; ``restore`` itself trusts its input (``isolate`` hands back what it captured)."""


Seeders = tuple[Callable[[], None], ...]
"""The calls that seed one row of a batch, in order."""
