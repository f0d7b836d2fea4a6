"""The controllers of torch's default CPU generator and of its CUDA generators.

Their ``capture()`` gives torch's own uint8 tensors; ``seedtree.capture()`` stores them as
lists of byte values, and ``validate``/``restore`` take either form.
"""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from ..core.layout import MT_WORDS, TORCH_CPU_IMAGE_BYTES, WORDS_TORCH_CPU, torch_cpu_image
from ..core.tree import SeedTree
from .libcontroller import LibController, Seeders

__all__ = ["TorchCPU", "TorchCUDA"]

_TEMPLATE = torch_cpu_image(np.zeros(MT_WORDS, dtype=np.uint32), 0)
"""The bytes every row's image shares (its state words and seed are written per batch)."""


class TorchCPU(LibController):
    """torch's default CPU generator: the whole MT19937 state from the node (torch's
    ``manual_seed`` keeps only 32 bits)."""

    name = "torch"
    module = "torch"
    words = (WORDS_TORCH_CPU, MT_WORDS + 2)

    def __init__(self) -> None:
        # One state image reused for every seeding (set_state copies it), made at the first:
        # the tensor that shares its memory, and views of its state words and of its seed.
        self._image: tuple[Any, np.ndarray, np.ndarray] | None = None

    def seed_words(self, words: np.ndarray) -> None:
        torch = sys.modules["torch"]
        if self._image is None:
            image = torch_cpu_image(words[:MT_WORDS], 0)  # pragma: no mutate - the seed is copied in below
            self._image = (torch.from_numpy(image), image[24 : 24 + 8 * MT_WORDS].view("<u8"), image[0:8].view("<u4"))
        tensor, state_words, seed_words = self._image
        np.copyto(state_words, words[:MT_WORDS])
        np.copyto(seed_words, words[MT_WORDS:])  # the 64-bit initial seed, low word first
        # What torch.initial_seed() reports (the stream is the state words): kept below 2**63,
        # as torch's own seeds are, so that a sample returning it collates into an int64.
        seed_words[1] &= 0x7FFFFFFF
        torch.default_generator.set_state(tensor)

    def row_seeders(self, rows: np.ndarray) -> tuple[Callable[[], None] | None, list[Seeders]]:
        # One generator image per row, filled for the whole batch by one vectorised copy
        # (a 32-to-64-bit copy per sample costs more than torch's set_state itself).
        torch = sys.modules["torch"]
        n = len(rows)
        images = np.empty((n, TORCH_CPU_IMAGE_BYTES), dtype=np.uint8)
        images[:] = _TEMPLATE
        states = images[:, 24 : 24 + 8 * MT_WORDS].view("<u8")
        seeds = images[:, 0:8].view("<u4")

        def refresh() -> None:
            np.copyto(states, rows[:, :MT_WORDS])
            np.copyto(seeds, rows[:, MT_WORDS:])
            seeds[:, 1] &= 0x7FFFFFFF  # initial_seed() below 2**63, as in seed_words

        set_state = torch.default_generator.set_state
        return refresh, [(functools.partial(set_state, torch.from_numpy(images[j])),) for j in range(n)]

    def snapshot(self) -> Any:
        return sys.modules["torch"].default_generator.get_state()

    def put_back(self, snapshot: Any) -> None:
        sys.modules["torch"].default_generator.set_state(snapshot)

    def fingerprint(self) -> Any:
        return sys.modules["torch"].default_generator.get_state().numpy().tobytes()

    def capture(self) -> Any:
        return sys.modules["torch"].get_rng_state()

    def validate(self, state: Any) -> None:
        torch = importlib.import_module("torch")  # sys.modules' copy, once imported
        if not isinstance(state, torch.Tensor):
            if not isinstance(state, (list, tuple)) or not all(
                isinstance(b, int) and not isinstance(b, bool) and 0 <= b < 256 for b in state
            ):
                raise ValueError("torch: the state must be a uint8 tensor or a list of bytes, as get_rng_state() gives")
            state = torch.tensor(state, dtype=torch.uint8)
        if state.dtype != torch.uint8 or state.dim() != 1:
            raise ValueError(
                f"torch: the state must be a 1-D uint8 tensor, got {state.dtype} of shape {tuple(state.shape)}"
            )
        probe = torch.Generator()
        try:
            probe.set_state(state)
        except (RuntimeError, TypeError, ValueError) as exc:
            raise ValueError(f"torch: the state is refused by torch ({str(exc).splitlines()[0]})") from None
        # torch ignores some bytes (the unused high half of each state word): a state that
        # does not read back as given was not written by torch, so it is damaged.
        kept = probe.get_state()
        # Only an older torch, which also took a legacy 5048-byte state, gives back another size.
        if kept.shape != state.shape:  # torch 2.13 takes 5056 bytes only
            raise ValueError(f"torch: the state is damaged (read back as {len(kept)} bytes)")  # pragma: no mutate
        if not torch.equal(kept, state):
            first = int((kept != state).nonzero()[0, 0])
            raise ValueError(f"torch: the state is damaged (byte {first} is not one torch writes there)")

    def restore(self, state: Any) -> None:
        torch = sys.modules["torch"]
        if not isinstance(state, torch.Tensor):
            state = torch.tensor(state, dtype=torch.uint8)
        torch.set_rng_state(state)


class TorchCUDA(LibController):
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

    def fingerprint(self) -> Any:
        states = self.capture()
        return None if states is None else tuple(state.numpy().tobytes() for state in states)

    def validate(self, state: Any) -> None:
        if state is None:
            return
        torch = importlib.import_module("torch")  # sys.modules' copy, once imported
        if not isinstance(state, (list, tuple)) or not all(isinstance(s, torch.Tensor) for s in state):
            raise ValueError("torch_cuda: the state must be a list of uint8 tensors, one per device, or None")
        if len(state) != torch.cuda.device_count():
            raise ValueError(
                f"torch_cuda: the state has {len(state)} devices, this process sees {torch.cuda.device_count()}"
            )
        for device, value in enumerate(state):
            if value.dtype != torch.uint8 or value.dim() != 1:
                raise ValueError(f"torch_cuda: device {device}'s state must be a 1-D uint8 tensor, got {value.dtype}")
            probe = torch.Generator(device=f"cuda:{device}")
            try:  # what set_rng_state_all would refuse half-way through the devices
                probe.set_state(value.cpu())
            except (RuntimeError, TypeError, ValueError) as exc:
                raise ValueError(f"torch_cuda: device {device}'s state is refused by torch ({exc})") from None

    def restore(self, state: Any) -> None:
        if state is not None:
            sys.modules["torch"].cuda.set_rng_state_all(state)
