"""The cursor of seedtree's map-style loader: the epoch and the batches delivered in it,
saved and loaded as a plain dict.
"""

from __future__ import annotations

from typing import Any

from ..core.codec import path_to_json
from ..core.optional import require
from .torch_accelerate import _Driver
from .torch_order import _EpochOrder, _shards_itself

torch = require("torch", "seedtree.torch")
import numpy as np  # noqa: E402


class _Cursor(_EpochOrder):
    """``SeedTreeSampler``'s cursor over epochs: which epoch the next iteration reads, how
    far the running one got, and its ``state_dict()``/``load_state_dict()`` (exact
    mid-epoch, also into another number of ranks). The attributes are ``SeedTreeSampler``'s."""

    batches_done: int
    in_order: bool
    _resume: bool
    _end: tuple[int, int, int] | None
    _driver: _Driver | None

    def set_epoch(self, epoch: int) -> None:
        """Start epoch ``epoch`` from its first batch at the next iteration; a resume loaded
        for this same epoch (``load_state_dict``) is kept."""
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ValueError(f"epoch must be a non-negative int, got {epoch!r}")
        epoch = int(epoch)
        if self._resume and epoch == self.epoch:
            return
        if self._resume:
            # A wrapper that counts epochs from 0 (accelerate's DataLoaderShard) would
            # otherwise silently retrain from the start of another epoch.
            raise ValueError(
                f"set_epoch({epoch}) would drop the resume into epoch {self.epoch} that load_state_dict() loaded; "
                f"call set_epoch({self.epoch}) on the loader you iterate (accelerate: on the prepared loader) first"
            )
        self.epoch, self.batches_done, self.start, self._resume = epoch, 0, 0, False
        self._driver = None

    def _delivered(self) -> None:
        self.batches_done += 1
        end = self._end
        # The iteration's batch count, computed when it began (reading the rank costs
        # microseconds: not once per batch), unless the cursor was moved since.
        total = end[2] if end is not None and end[:2] == (self.epoch, self.start) else self._remaining_batches()
        if self.batches_done >= total:
            self.epoch, self.batches_done, self.start = self.epoch + 1, 0, 0

    def _ran_empty(self) -> None:
        """The loader's iteration has run out of batches: its epoch is over (``_delivered``
        already advanced it after the last batch, unless there was none to hand out or a
        batch was not counted)."""
        end = self._end
        if end is not None and end[:2] == (self.epoch, self.start) and not self._resume:
            self.epoch, self.batches_done, self.start = self.epoch + 1, 0, 0

    def consumed(self) -> int:
        """Global units (samples or batches) of the current epoch consumed by all ranks,
        assuming they move in step (as DDP's collective steps make them)."""
        rank, world, _ = self._plan(self.epoch)
        if self.source is not None and _shards_itself(self.source, self.source_batches):
            world = 1
        per_batch = 1 if self.units == "batches" else self.batch_size
        return min(self.start + self.batches_done * per_batch * world, self._total(self._plan(self.epoch)[2]))

    def _driven(self) -> tuple[int, int] | None:
        """``(epoch, global units consumed)`` when a wrapper draws this epoch's batches
        (see ``_Driver``); None when seedtree's own loader counts them."""
        driver = self._driver
        if driver is None or driver.epoch != self.epoch or self._resume:
            return None
        trained = driver.trained()
        if trained is None and self._batches(driver.start) == 0:
            trained = -1  # an iteration with no batch to hand out (accelerate then never flags its end)
        if trained is None:
            raise ValueError(
                "this loader's batches are drawn through a wrapper seedtree cannot see into (or an iteration "
                "abandoned mid-epoch), so it cannot know which were trained: take state_dict() at an epoch "
                "boundary, or iterate seedtree's loader itself or accelerate's prepare()d loader (without "
                "dispatch_batches=True, whose look-ahead it cannot see)"
            )
        rank, world, order = self._plan(driver.epoch)
        total = self._total(order)
        per_batch = 1 if self.units == "batches" else self.batch_size
        stride = 1 if self.source is not None and _shards_itself(self.source, self.source_batches) else world
        consumed = total if trained < 0 else min(total, driver.start + trained * driver.world * stride * per_batch)
        if consumed >= total or self._batches_in(len(self._positions(rank, world, total, consumed))) == 0:
            return driver.epoch + 1, 0
        return driver.epoch, consumed

    def state_dict(self) -> dict[str, Any]:
        """The cursor, plus what it is only valid with (checked on load). Plain ints,
        bools, strings and lists: it saves with JSON or ``torch.save``.

        Exact wherever the batches are drawn: under seedtree's own loader it counts the
        batches its iterator has handed out; under accelerate's ``prepare()`` (which
        iterates the batch sampler from its own DataLoader, prefetching and reading one
        batch ahead) it reads what was handed out from torch's iterator and accelerate's
        look-ahead. When another DataLoader draws from the batch sampler and its
        look-ahead cannot be seen, it refuses mid-epoch rather than guess. A consumer that
        reads ahead of seedtree's own iterator (a prefetching wrapper) holds batches it
        has not trained yet: take the state before pulling the next batch (seedtree's
        Lightning integration does)."""
        rank, world = self._layout()
        if not self.in_order and self.batches_done and not self._resume:
            raise ValueError(
                "this loader has in_order=False: its batches arrive in the order the workers finish them, so "
                "which ones were delivered mid-epoch is not a count; take state_dict() at an epoch boundary "
                "(or drop in_order=False)"
            )
        driven = self._driven()
        if driven is not None:
            epoch, consumed = driven
            return {**self._cursor_state(epoch, 0, consumed, consumed), "rank": rank, "world_size": world}
        return {
            **self._cursor_state(self.epoch, self.batches_done, self.start, self.consumed()),
            "rank": rank,
            "world_size": world,
        }

    def _cursor_state(self, epoch: int, done: int, start: int, consumed: int) -> dict[str, Any]:
        return {
            "epoch": epoch,
            "batches_done": done,
            "start": start,
            "consumed": consumed,
            "units": self.units,
            "source": None if self.source is None else type(self.source).__qualname__,
            "n": self.n,
            "batch_size": self.batch_size,
            "shuffle": self.shuffle,
            "drop_last": self.drop_last,
            "drop_uneven": self.drop_uneven,
            "entropy": str(self.tree.entropy),
            "path": path_to_json(self.tree.path),
        }

    _MUST_MATCH = ("n", "batch_size", "shuffle", "drop_last", "drop_uneven", "entropy", "path")

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from ``state_dict()`` at the next iteration.

        The same layout resumes with exactly the next batch. Another number of ranks
        (elastic resume) continues from the global position the state records: the union
        of what the new ranks read is exactly the rest of the epoch. Refuses, naming the
        field, a state from another dataset size, batching, order, sampler or tree, and a
        damaged one (wrong types, negative or out-of-range counters)."""
        if not isinstance(state, dict):
            raise ValueError(f"a loader state must be the dict state_dict() returned, got {type(state).__name__}")
        rank, world = self._layout()
        mine = {**self._cursor_state(self.epoch, 0, 0, 0), "rank": rank, "world_size": world}
        for key in self._MUST_MATCH:
            if key not in state:
                raise ValueError(f"sampler state has no {key!r}: pass what SeedTreeSampler.state_dict() returned")
            if state[key] != mine[key] or type(state[key]) is not type(mine[key]):
                raise ValueError(
                    f"sampler state was saved with {key}={state[key]!r} but this loader has {key}={mine[key]!r}; "
                    "resume with the same dataset, batching, shuffling and tree"
                )
        for key in ("epoch", "batches_done"):
            value = state.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"sampler state {key}={value!r} must be a non-negative int")
        epoch, done = state["epoch"], state["batches_done"]
        units = state.get("units", "samples")
        if units != self.units or state.get("source", mine["source"]) != mine["source"]:
            raise ValueError(
                f"sampler state was saved with the sampler {state.get('source')!r} ({units}) but this loader has "
                f"{mine['source']!r} ({self.units}); resume with the same sampler"
            )
        saved = (self.epoch, self.batches_done, self.start, self._resume)
        try:
            self._load_cursor(state, epoch, done, mine)
        except BaseException:
            self.epoch, self.batches_done, self.start, self._resume = saved  # a refused state changes nothing
            raise
        self._driver = None

    def _load_cursor(self, state: dict[str, Any], epoch: int, done: int, mine: dict[str, Any]) -> None:
        consumed = state.get("consumed")
        same_layout = (
            state.get("world_size", mine["world_size"]) == mine["world_size"]
            and state.get("rank", mine["rank"]) == mine["rank"]
        )
        self.epoch = epoch
        _, world, order = self._plan(epoch)
        total = self._total(order)
        if same_layout or consumed is None:
            # ``start``: where this layout's batches began (an elastic resume starts mid-epoch);
            # states written before it was recorded began at 0.
            start = state.get("start", 0)
            if isinstance(start, bool) or not isinstance(start, int) or not 0 <= start <= total:
                raise ValueError(f"sampler state start={start!r} must be an int in [0, {total}]")
            self.start, self.batches_done = start, done
            if done > self._remaining_batches():
                raise ValueError(
                    f"sampler state batches_done={done} is past the end of epoch {epoch} "
                    f"({self._remaining_batches()} batches from {start})"
                )
        else:
            if isinstance(consumed, bool) or not isinstance(consumed, int) or not 0 <= consumed <= total:
                raise ValueError(f"sampler state consumed={consumed!r} must be an int in [0, {total}]")
            self.start, self.batches_done = consumed, 0
        self._resume = True
