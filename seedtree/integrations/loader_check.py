"""``check_loader``: prove a loader's invariance against the single-process uninterrupted run.

A seedtree loader promises that an epoch's order and every sample's randomness are a pure
function of (tree, epoch, sampler, index, occurrence): they do not depend on ``num_workers``,
persistent or spawned workers, or a resume mid-epoch into another layout. ``check_loader``
tests that promise on *your* pipeline, as a property over a layout and resume matrix:
every configuration is compared with the reference (``num_workers=0``, never interrupted).

For a map-style loader made by ``seedtree.torch.loader`` each sample is probed where it is
produced: the state every RNG library (python ``random``, numpy's global, torch, the
ambient ``seedtree.rng()``) is left in after the sample ran identifies which stream it drew
from and how far, so a divergence names the epoch, the index, its occurrence, the two
layouts and the libraries whose draws differ. For other loaders (a stream loader, a plain
DataLoader) whole batches are compared and a divergence names the epoch and batch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import pickle
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.optional import require
from ..runtime import ambient

torch = require("torch", "seedtree.testing")

__all__ = ["DEFAULT_LAYOUTS", "Divergence", "LoaderReport", "Probed", "check_loader", "probe_digest"]

DEFAULT_LAYOUTS: tuple[dict[str, Any], ...] = (
    {"num_workers": 1},
    {"num_workers": 2},
    {"num_workers": 2, "persistent_workers": True},
    {"num_workers": 2, "multiprocessing_context": "spawn"},
)
"""The layouts compared with the reference ``{"num_workers": 0}`` when none are given."""


@dataclass(frozen=True)
class Divergence:
    """The first place a configuration differs from the reference."""

    epoch: int
    batch: int
    reference: str  # the reference layout, as text
    layout: str  # the layout that diverged (and its resume point)
    what: str  # "draws", "data", "missing", "extra" or "order"
    index: int | None = None  # the sample's index (map-style loaders made by seedtree)
    occurrence: int | None = None
    libraries: tuple[str, ...] = ()  # the RNG libraries whose draws differ

    def __str__(self) -> str:
        where = f"epoch {self.epoch}, batch {self.batch}"
        if self.index is not None:
            where += f", sample {self.index}" + (f" (occurrence {self.occurrence})" if self.occurrence else "")
        libs = f" ({', '.join(self.libraries)} differ)" if self.libraries else ""
        return f"{where}: {self.what}{libs} under {self.layout}, compared with {self.reference}"


@dataclass
class LoaderReport:
    """What ``check_loader`` found. Truthy (``.ok``) when every configuration matched the
    reference; else ``divergence`` is the first difference found."""

    configurations: list[str] = field(default_factory=list)
    divergence: Divergence | None = None
    samples_checked: int = 0  # samples compared one by one (seedtree's map-style loaders)
    batches_checked: int = 0
    not_checked: list[str] = field(default_factory=list)  # what the matrix had to leave out, and why

    @property
    def ok(self) -> bool:
        """True when no configuration diverged from the reference."""
        return self.divergence is None

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        head = (
            f"{len(self.configurations)} configurations, {self.batches_checked} batches and "
            f"{self.samples_checked} samples compared"
        )
        left = "".join(f"; not checked: {why}" for why in self.not_checked)
        if self.ok:
            return f"INVARIANT: {head}, no divergence{left}"
        return f"DIVERGES: {self.divergence} ({head}{left})"

    def count(self, run: list[list[Record]]) -> None:
        """Add one configuration's batches and samples to the totals."""
        for epoch in run:
            self.batches_checked += len(epoch)
            self.samples_checked += sum(1 for batch in epoch for key, _, _ in batch if key is not None)


# -- probing one sample --------------------------------------------------------------


def _digest(*parts: bytes) -> str:
    h = hashlib.blake2b(digest_size=8)
    for part in parts:
        h.update(part)
    return h.hexdigest()


def probe_digest() -> dict[str, str]:
    """A short digest of the state each RNG library is in now (what a sample left behind:
    it identifies the stream drawn from and how many draws were taken)."""
    out = {
        "random": _digest(repr(random.getstate()).encode()),
        "numpy": _digest(pickle.dumps(np.random.get_state(legacy=False))),
        "torch": _digest(torch.get_rng_state().numpy().tobytes()),
    }
    try:
        out["seedtree.rng"] = _digest(repr(ambient.rng().bit_generator.state).encode())
    except RuntimeError:  # nothing bound: the sample cannot have drawn from it
        out["seedtree.rng"] = "-"
    return out


_SCALARS = (str, bytes, int, float, complex, bool, type(None), np.generic)


def _bytes_of(value: Any) -> bytes:
    """The content of a sample or batch, as bytes: tensors and arrays by value (with dtype
    and shape), mappings, sequences and dataclasses by their items, scalars by ``repr``.
    Anything else is refused: comparing its ``repr`` could miss a difference (torch
    abbreviates long tensors) or invent one (object addresses)."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        return b"T" + str((value.dtype, tuple(value.shape))).encode() + value.contiguous().numpy().tobytes()
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            return b"O[" + b",".join(_bytes_of(v) for v in value.ravel().tolist()) + b"]"
        return b"A" + str((value.dtype, value.shape)).encode() + np.ascontiguousarray(value).tobytes()
    if isinstance(value, _SCALARS):
        return repr(value).encode()
    if isinstance(value, Mapping):
        return b"{" + b",".join(_bytes_of(k) + b":" + _bytes_of(v) for k, v in value.items()) + b"}"
    if isinstance(value, Sequence):
        return b"[" + b",".join(_bytes_of(v) for v in value) + b"]"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return b"D(" + b",".join(_bytes_of(getattr(value, f.name)) for f in dataclasses.fields(value)) + b")"
    raise TypeError(
        f"check_loader cannot compare a {type(value).__name__} by value: make the samples and batches tensors, "
        "arrays, numbers, strings, or mappings, sequences and dataclasses of them"
    )


class Probed:
    """A sample with its key and the RNG digests it left (picklable: workers send it)."""

    __slots__ = ("key", "digests", "value")

    def __init__(self, key: tuple[int, int, int], digests: dict[str, str], value: Any) -> None:
        self.key, self.digests, self.value = key, digests, value

    def __reduce__(self) -> tuple[Any, ...]:
        return (Probed, (self.key, self.digests, self.value))


class _ProbeCollate:
    """Collates the samples as the loader would, keeping each sample's probe beside."""

    def __init__(self, collate: Callable[[list[Any]], Any]) -> None:
        self.collate = collate

    def __call__(self, samples: list[Any]) -> Any:
        probes = [(s.key, s.digests, _digest(_bytes_of(s.value))) for s in samples]
        batch = self.collate([s.value for s in samples])
        # The collated batch too: a collate that draws (mixup) is part of the pipeline.
        return ("seedtree-probe", probes, _digest(_bytes_of(batch)), batch)


# -- running one configuration -------------------------------------------------------

Record = list[tuple[tuple[int, int, int] | None, dict[str, str], str]]
"""Per delivered batch: (key, digests, content digest) per sample, then (None, {}, the
collated batch's digest); only that batch-level entry for loaders that are not probed."""


def _instrument(dl: Any) -> bool:
    """Turn on per-sample probing for a seedtree map-style loader; False for others."""
    dataset: Any = getattr(dl, "dataset", None)
    if type(dataset).__name__ != "_SampleBound" or not hasattr(dataset, "seedtree_probe"):
        return False
    dataset.seedtree_probe = True
    dl.collate_fn = _ProbeCollate(dl.collate_fn)
    return True


def _record(batch: Any, probed: bool) -> Record:
    if probed and isinstance(batch, tuple) and len(batch) == 4 and batch[0] == "seedtree-probe":
        return [*((tuple(k), d, c) for k, d, c in batch[1]), (None, {}, batch[2])]
    return [(None, {}, _digest(_bytes_of(batch)))]


def _run(
    make: Callable[..., Any], layout: dict[str, Any], epochs: int, resume: tuple[int, int, dict[str, Any]] | None
) -> list[list[Record]]:
    """The batches of ``epochs`` epochs under ``layout``; with ``resume=(epoch, k, other)``,
    the run is broken off after k batches of that epoch and continued by a new loader
    built with the ``other`` layout from ``state_dict()``."""
    dl = make(**layout)
    probed = _instrument(dl)
    out: list[list[Record]] = []
    for e in range(epochs):
        if hasattr(dl, "set_epoch"):
            dl.set_epoch(e)
        got: list[Record] = []
        if resume is not None and resume[0] == e:
            it = iter(dl)
            for _ in range(resume[1]):
                batch = next(it, None)
                if batch is None:
                    break
                got.append(_record(batch, probed))
            state = dl.state_dict()
            del it
            dl = make(**resume[2])
            probed = _instrument(dl)
            dl.load_state_dict(state)
            if state.get("epoch", e) > e:  # saved after the epoch's last batch: nothing of it is left
                out.append(got)
                continue
            dl.set_epoch(e)
        got.extend(_record(b, probed) for b in dl)
        out.append(got)
    return out


def _describe(layout: dict[str, Any], resume: tuple[int, int, dict[str, Any]] | None = None) -> str:
    text = "{" + ", ".join(f"{k}={v!r}" for k, v in layout.items()) + "}"
    if resume is not None:
        text += f" resumed after {resume[1]} batches of epoch {resume[0]} into {_describe(resume[2])}"
    return text


def _compare(
    ref: list[list[Record]], got: list[list[Record]], ref_name: str, name: str, ordered: bool
) -> Divergence | None:
    for e, (ref_e, got_e) in enumerate(zip(ref, got, strict=True)):
        if ordered:
            for b, (rb, gb) in enumerate(zip(ref_e, got_e, strict=False)):
                if rb == gb:
                    continue
                for (rk, rd, rc), (gk, gd, gc) in zip(rb, gb, strict=False):
                    if rk != gk:
                        return Divergence(e, b, ref_name, name, "order", gk[1] if gk else None)
                    if rd != gd or rc != gc:
                        libs = tuple(sorted(lib for lib in rd if rd[lib] != gd.get(lib)))
                        what = "draws" if libs else "data"
                        k = rk or (None, None, None)
                        return Divergence(e, b, ref_name, name, what, k[1], k[2], libs)
                what = "missing" if len(gb) < len(rb) else "extra"
                return Divergence(e, b, ref_name, name, what)
            if len(ref_e) != len(got_e):
                b = min(len(ref_e), len(got_e))
                return Divergence(e, b, ref_name, name, "missing" if len(got_e) < len(ref_e) else "extra")
    return None


def check_loader(
    make_loader: Callable[..., Any] | Any,
    *,
    layouts: Sequence[dict[str, Any]] | None = None,
    epochs: int = 2,
    resume_points: int | Sequence[int] = 3,
) -> LoaderReport:
    """Run ``make_loader(**layout)`` under each layout and resume point and compare every
    epoch with the reference ``make_loader(num_workers=0)`` run without interruption.

    ``make_loader`` builds your loader with the layout keywords it is given
    (``num_workers``, ``persistent_workers``, ``multiprocessing_context``); a loader made by
    ``seedtree.torch.loader`` may be passed instead (it is rebuilt with each layout).
    ``resume_points``: how many mid-epoch resume points to try per epoch (spread over the
    epoch), or the batch numbers to break off after; each resume continues in another
    layout than the one it was saved in, in every epoch (a loader without
    ``state_dict``/``load_state_dict`` is checked without resumes, and the report says so).
    Each sample is compared (its content and the RNG states it left) and so is each
    collated batch (a collate that draws, such as mixup, is part of the pipeline).
    Returns a ``LoaderReport``: truthy when every configuration gives the reference's
    batches, bit for bit and in the same order; else its ``divergence`` names the first
    difference (epoch, batch, sample index and occurrence, the two layouts, and which
    library's draws differ). Samples and batches must be tensors, arrays, numbers,
    strings, or mappings, sequences and dataclasses of them (anything else is refused
    with a ``TypeError``: comparing a ``repr`` could miss a difference)."""
    make = _factory(make_loader)
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    layouts = list(DEFAULT_LAYOUTS if layouts is None else layouts)
    for layout in layouts:
        if not isinstance(layout, dict):
            raise TypeError(f"each layout must be a dict of DataLoader keywords, got {type(layout).__name__}")
    base: dict[str, Any] = {"num_workers": 0}
    report = LoaderReport()
    ref = _run(make, base, epochs, None)
    ref_name = _describe(base)
    report.configurations.append(ref_name)
    report.count(ref)
    configs: list[tuple[dict[str, Any], tuple[int, int, dict[str, Any]] | None]] = [(lay, None) for lay in layouts]
    n_batches = len(ref[0])
    if isinstance(resume_points, int):
        if resume_points < 0:
            raise ValueError(f"resume_points must be >= 0, got {resume_points}")
        points = sorted({max(1, n_batches * (i + 1) // (resume_points + 1)) for i in range(resume_points)})
    else:
        points = sorted({int(p) for p in resume_points})
    points = [p for p in points if 0 < p < n_batches]
    probe = make(**base)
    if points and not (
        callable(getattr(probe, "state_dict", None)) and callable(getattr(probe, "load_state_dict", None))
    ):
        report.not_checked.append(f"resumes (a {type(probe).__name__} has no state_dict()/load_state_dict())")
        points = []
    del probe
    cycle = [base, *layouts]
    for j, p in enumerate(points):
        for e in range(epochs):
            saved_in = cycle[(j + e) % len(cycle)]
            resumed_in = cycle[(j + e + 1) % len(cycle)]
            configs.append((saved_in, (e, p, resumed_in)))
    for layout, resume in configs:
        name = _describe(layout, resume)
        report.configurations.append(name)
        got = _run(make, layout, epochs, resume)
        report.count(got)
        found = _compare(ref, got, ref_name, name, ordered=True)
        if found is not None:
            report.divergence = found
            return report
    return report


def _factory(make_loader: Any) -> Callable[..., Any]:
    """``make_loader`` as a ``**layout -> loader`` function (a seedtree loader is rebuilt)."""
    rebuild = getattr(make_loader, "seedtree_rebuild", None)
    if callable(rebuild):  # a loader made by seedtree.torch.loader: rebuilt with each layout
        return rebuild
    if not callable(make_loader):
        raise TypeError(
            "check_loader needs a function make_loader(**layout) -> loader, or a loader made by seedtree.torch.loader; "
            f"got {type(make_loader).__name__}"
        )
    return make_loader
