"""Lightning integration: a ``Callback`` that makes a resumed run draw what the
uninterrupted run draws.

    trainer = lightning.Trainer(callbacks=[seedtree.lightning.SeedTreeCallback(root)])

- Every checkpoint holds seedtree's RNG state (``seedtree.capture()``: python ``random``,
  numpy's global, torch CPU and CUDA, the ambient stream); on resume it is put back when
  training starts, so dropout and other in-loop randomness continue exactly.
- The loader's cursor in the checkpoint is what the training loop has *finished*:
  Lightning fetches one batch ahead, so the loader's own count is one too far at the
  moment a mid-epoch checkpoint is taken; the callback writes the loop's count instead.
- The epoch of every seedtree loader follows ``trainer.current_epoch`` (Lightning also
  calls ``set_epoch`` on ``loader.sampler``; the callback makes it explicit).
- With a logger, the manifest (root entropy, recorded streams, library versions) is logged
  as hyperparameters under ``seedtree/`` when fitting starts.
"""

from __future__ import annotations

from typing import Any

from ..core.optional import require
from ..core.tree import SeedTree
from ..runtime.capture import capture, restore
from ..runtime.manifest import Manifest
from .torch import SeedTreeLoader, SeedTreeSampler

lightning = require("lightning", "seedtree.lightning")

__all__ = ["SeedTreeCallback"]

_KEY = "seedtree"


def _seedtree_samplers(loaders: Any) -> list[SeedTreeSampler]:
    found = []
    stack = [loaders]
    while stack:
        item = stack.pop()
        if isinstance(item, SeedTreeLoader):
            found.append(item.seedtree_sampler)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif hasattr(item, "flattened"):  # Lightning's CombinedLoader
            stack.extend(item.flattened)
    return found


class SeedTreeCallback(lightning.pytorch.Callback):  # type: ignore[name-defined]  # imported lazily
    """See the module docstring. ``root`` is the run's root (recorded in the logged
    manifest); ``log_manifest=False`` logs nothing."""

    def __init__(self, root: SeedTree | None = None, log_manifest: bool = True) -> None:
        if root is not None and not isinstance(root, SeedTree):
            raise TypeError(f"SeedTreeCallback takes a SeedTree root, got {type(root).__name__}")
        self.root = root
        self.log_manifest = log_manifest
        self._pending: dict[str, Any] | None = None

    @property
    def state_key(self) -> str:
        return _KEY

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        if self.log_manifest and self.root is not None and trainer.logger is not None:
            data = Manifest.collect(self.root).to_dict()
            params = {"seedtree/root": data["root"]["entropy"]}
            params.update({f"seedtree/stream/{name}": str(entry["path"]) for name, entry in data["streams"].items()})
            for lib in ("python", "numpy", "torch", "seedtree", "lightning"):
                value = data["environment"].get(lib)
                if value is not None:
                    params[f"seedtree/{lib}"] = str(value)
            trainer.logger.log_hyperparams(params)

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        if self._pending is not None:
            restore(self._pending)
            self._pending = None

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        for sampler in _seedtree_samplers(trainer.train_dataloader):
            sampler.set_epoch(trainer.current_epoch)

    def on_save_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        checkpoint[_KEY] = capture()
        # Saved from on_train_batch_end, the batch just trained is processed but not yet
        # "completed"; at the end of an epoch both are the epoch's length.
        done = trainer.fit_loop.epoch_loop.batch_progress.current.processed
        states = checkpoint.get("loops", {}).get("fit_loop", {}).get("state_dict", {}).get("combined_loader", [])
        for state in states:
            if isinstance(state, dict) and "units" in state and "batches_done" in state:
                state["batches_done"] = int(done)  # what the loop finished, not what it prefetched
                state["epoch"] = int(trainer.current_epoch)
                state.pop("consumed", None)  # same layout: the count above is the cursor

    def on_load_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        self._pending = checkpoint.get(_KEY)
