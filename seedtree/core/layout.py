"""The word map of a node: which of a node's expansion words each consumer reads.

A node's pool expands into 2**30 distinct 32-bit words (``SeedTree.words``). Each consumer
reads its own range, so the generators a node makes for different libraries never share
seed material. This table is the contract: a stream recorded today is rebuilt from it.

| words | used by | how |
| --- | --- | --- |
| `[0, n)` | NumPy bit generators | exactly `SeedSequence.generate_state` |
| `[2**24, +4)` | `random` | `random.seed(128-bit int)` |
| `[2**24 + 4, +624)` | NumPy's global | whole MT19937 key |
| `[2**24 + 628, +626)` | torch CPU | whole MT19937 state + 64-bit initial seed |
| `[2**24 + 1254, +16)` | JAX keys | key data of `jax(impl)`: its first n words |
| `[2**25 + k*n, +n)` | `seed_int(32n, k)` | CUDA device d takes `seed_int(64, d)` |

The three global generators' ranges are contiguous, so seeding all of them costs one
expansion (per-sample seeding is on the hot path of the DataLoader integration). The
byte image of torch's CPU generator lives here too, beside the words that fill it: the
node's ``torch()`` generator and the torch controller are built from the same image.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "MT_WORDS",
    "WORDS_CUDA",
    "WORDS_JAX",
    "JAX_WORDS",
    "WORDS_NUMPY_GLOBAL",
    "WORDS_RANDOM",
    "WORDS_TORCH_CPU",
    "WORD_LIMIT",
    "TORCH_CPU_IMAGE_BYTES",
    "torch_cpu_image",
]

MT_WORDS = 624
"""Words of a Mersenne Twister state (MT19937)."""
WORD_LIMIT = 1 << 30
"""Distinct words of a node's expansion: its hash constants cycle with this period."""
WORDS_RANDOM = 1 << 24
WORDS_NUMPY_GLOBAL = WORDS_RANDOM + 4
WORDS_TORCH_CPU = WORDS_NUMPY_GLOBAL + MT_WORDS
WORDS_JAX = WORDS_TORCH_CPU + MT_WORDS + 2
JAX_WORDS = 16
"""Words reserved for JAX key data (the largest key of JAX's PRNG implementations is 4 words)."""
WORDS_CUDA = 2 << 24

TORCH_CPU_IMAGE_BYTES = 5056
"""Size of torch's ``CPUGeneratorImplState``: initial seed u64, left i32, seeded i32,
next u64, state u64[624], then the cached normals."""


def torch_cpu_image(words: np.ndarray, initial_seed: int) -> np.ndarray:
    """The byte image (uint8, 5056 bytes) of a torch CPU generator whose whole MT19937
    state is ``words`` (624 uint32) and whose ``initial_seed()`` is ``initial_seed``; no
    cached normal is pending."""
    image = np.zeros(TORCH_CPU_IMAGE_BYTES, dtype=np.uint8)
    image[0:8] = np.frombuffer(int(initial_seed).to_bytes(8, "little"), dtype=np.uint8)
    image[8:16] = np.frombuffer((1).to_bytes(4, "little") * 2, dtype=np.uint8)  # left, seeded
    image[24 : 24 + 8 * MT_WORDS].view("<u8")[:] = words
    return image
