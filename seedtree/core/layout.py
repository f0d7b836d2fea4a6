"""The word map of a node: which of a node's expansion words each consumer reads.

A node's pool expands into 2**30 distinct 32-bit words (``SeedTree.words``). Each consumer
reads its own range, so the generators a node makes for different libraries never share
seed material. This table is the contract: a stream recorded today is rebuilt from it.

==================  ===================  ========================================
words               used by              how
==================  ===================  ========================================
[0, n)              NumPy bit generators  exactly SeedSequence.generate_state
[2**24, +4)         (retired)             ``random``'s 128-bit seed before 0.x
[2**24 + 4, +624)   NumPy's global        whole MT19937 key
[2**24 + 628, +626) torch CPU             whole MT19937 state + 64-bit initial seed
[2**24 + 1254,+624) ``random``            whole MT19937 state (``random_state``)
[2**25 + k*n, +n)   ``seed_int(32n, k)``  CUDA device d takes ``seed_int(64, d)``
==================  ===================  ========================================

The three global generators' ranges are contiguous, so seeding all of them costs one
expansion (per-sample seeding is on the hot path of the DataLoader integration), and each
one's whole state is written from its words: no library's own seeding routine (python's
``init_by_array`` alone costs more than the rest) runs per sample. The states built from
the words live here too, beside the words that fill them: the node's ``torch()`` and
``random()`` generators and the controllers are built from the same functions.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "MT_TOP_BIT",
    "MT_WORDS",
    "WORDS_CUDA",
    "WORDS_NUMPY_GLOBAL",
    "WORDS_RANDOM",
    "random_state",
    "WORDS_TORCH_CPU",
    "WORD_LIMIT",
    "TORCH_CPU_IMAGE_BYTES",
    "torch_cpu_image",
]

MT_WORDS = 624
"""Words of a Mersenne Twister state (MT19937)."""
WORD_LIMIT = 1 << 30
"""Distinct words of a node's expansion: its hash constants cycle with this period."""
WORDS_NUMPY_GLOBAL = (1 << 24) + 4  # [2**24, +4) is retired: random's 128-bit seed before 0.x
WORDS_TORCH_CPU = WORDS_NUMPY_GLOBAL + MT_WORDS
WORDS_RANDOM = WORDS_TORCH_CPU + MT_WORDS + 2
MT_TOP_BIT = 0x80000000
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


def random_state(words: np.ndarray) -> tuple[int, tuple[int, ...], None]:
    """The ``random.setstate`` state whose whole MT19937 state is ``words`` (624 uint32),
    with the top bit of the first word set as python's own seeding sets it (MT19937 reads
    only that bit of word 0; it keeps the state from ever being all zero), at position
    624 (the next draw twists) and with no cached Gaussian."""
    state = [int(w) for w in words[:MT_WORDS]]
    state[0] |= MT_TOP_BIT
    return (3, (*state, MT_WORDS), None)
