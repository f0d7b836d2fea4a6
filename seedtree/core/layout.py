"""The word map of a node: which of a node's expansion words each consumer reads.

A node's pool expands into 2**30 distinct 32-bit words (``SeedTree.words``). Each consumer
reads its own range, so the generators a node makes for different libraries never share
seed material. This table is the contract: a stream recorded today is rebuilt from it.

| words | used by | how |
| --- | --- | --- |
| `[0, n)` | NumPy bit generators | exactly `SeedSequence.generate_state` |
| `[2**24, +4)` | the global RNGs | 128-bit key of the globals expansion |
| `[2**24 + 4, +16)` | JAX keys | key data of `jax(impl)`: its first n words |
| `[2**25 + k*n, +n)` | `seed_int(32n, k)` | CUDA device d takes `seed_int(64, d)` |

The global generators (python ``random``, NumPy's global ``RandomState``, torch's CPU
generator) have wide states: 624 words of Mersenne Twister each. They are filled from the
node's *globals expansion* (``expand_globals``): the 128-bit key ``(a, b)`` (two 64-bit
halves, low word first) is stretched by a keyed SplitMix64, ``z_k = (a + (k + 1) * G) ^ b``
then SplitMix64's finaliser, each 64-bit output giving two words, low first. Words of the
expansion:

==================  ===================  ========================================
[0, 624)            NumPy's global        whole MT19937 key
624                 (slot)                in a batch buffer: NumPy's position
625                 (slot)                in a batch buffer: ``random``'s position
[626, +624)         ``random``            whole MT19937 state (``python_random_state``)
[1250, +626)        torch CPU             whole MT19937 state + 64-bit initial seed
==================  ===================  ========================================

The two slot words are ordinary expansion words (``globals_words()`` returns them as
such) that no generator reads: a batch buffer holds the position there instead, so that
words [0, 625) of a row are byte for byte NumPy's ``{key[624]; int pos}`` and words
[625, 1250) are ``random``'s C ``{int index; state[624]}``, and seeding either from a row
is one copy (``NUMPY_GLOBAL_IMAGE``, ``RANDOM_IMAGE``).

Each twister starts at position ``MT_FRESH`` (0): its 624 words are a freshly twisted
block, so the first draws read them, tempered, and no twist runs per sample before them.

Why not SeedSequence's own expansion for these: each of its output words is a bijection of
one of only four pool words, so 156 words of a 624-word state are functions of the same 32
bits with fixed GF(2) relations between their bits (bit 0 xor bit 16 of every such word is
one pool bit xor a constant). Mersenne Twister's outputs are GF(2)-linear in its state, and the
battery's rank tests see it across streams within 1 MiB (NumPy's ``MT19937(SeedSequence)``
shows the same). A generator fills the states instead, for a whole batch of nodes at once,
in a few array operations, and no library's own seeding routine runs per sample (python's
``init_by_array`` alone costs more than the rest). The states built from the words live
here too: the node's ``torch()`` and ``random()`` generators and the controllers are built
from the same functions.
"""

from __future__ import annotations

import sys
import threading

import numpy as np

__all__ = [
    "GLOBALS_WORDS",
    "MT_FRESH",
    "MT_WORDS",
    "NUMPY_GLOBAL_IMAGE",
    "RANDOM_IMAGE",
    "WORDS_CUDA",
    "WORDS_GLOBALS_KEY",
    "WORDS_JAX",
    "JAX_WORDS",
    "WORDS_NUMPY_GLOBAL",
    "WORDS_RANDOM",
    "expand_globals",
    "python_random_state",
    "WORDS_TORCH_CPU",
    "WORD_LIMIT",
    "TORCH_CPU_IMAGE_BYTES",
    "torch_cpu_image",
]

MT_WORDS = 624
"""Words of a Mersenne Twister state (MT19937)."""
WORD_LIMIT = 1 << 30
"""Distinct words of a node's expansion: its hash constants cycle with this period."""
WORDS_GLOBALS_KEY = 1 << 24
"""Node words [2**24, +4): the key of the globals expansion."""
WORDS_NUMPY_GLOBAL = 0
"""Offsets into the globals expansion (not node words)."""
WORDS_RANDOM = WORDS_NUMPY_GLOBAL + MT_WORDS + 2
WORDS_TORCH_CPU = WORDS_RANDOM + MT_WORDS
GLOBALS_WORDS = WORDS_TORCH_CPU + MT_WORDS + 2
"""Words of the globals expansion (an even count: whole 64-bit outputs)."""
NUMPY_GLOBAL_IMAGE = (WORDS_NUMPY_GLOBAL, MT_WORDS + 1)
"""NumPy's key and, in its last word, the slot of its position (``{key[624]; int pos}``)."""
RANDOM_IMAGE = (WORDS_RANDOM - 1, MT_WORDS + 1)
"""The slot of ``random``'s position, then its state (CPython's ``{int index; state[624]}``)."""
MT_FRESH = 0
"""Position every seeded Mersenne Twister starts at: its 624 words are taken as a freshly
twisted block, so the first draws read them (tempered) and no twist runs before the first
draw (a per-sample twist of three generators would cost more than writing the states)."""

_GAMMA = 0x9E3779B97F4A7C15  # SplitMix64's increment and finaliser constants
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_STEPS = np.arange(1, GLOBALS_WORDS // 2 + 1, dtype=np.uint64) * np.uint64(_GAMMA)
_STEPS.setflags(write=False)
_SCRATCH = threading.local()


def expand_globals(keys: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The globals expansion (``GLOBALS_WORDS`` uint32 words) of each row of ``keys``
    (shape (n, 4), uint32: a node's words ``[WORDS_GLOBALS_KEY, +4)``), shape (n,
    GLOBALS_WORDS); written into ``out`` (C-contiguous uint32 of that shape) if given.
    Vectorised over the rows: a DataLoader batch costs a dozen array operations."""
    keys = np.ascontiguousarray(keys, dtype=np.uint32)
    n = keys.shape[0]
    if out is None:
        out = np.empty((n, GLOBALS_WORDS), dtype=np.uint32)
    elif out.shape != (n, GLOBALS_WORDS) or out.dtype != np.uint32 or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous uint32 array of shape {(n, GLOBALS_WORDS)}")
    # (a, b) are the rows' two 64-bit halves, low word first. On a little-endian machine both
    # branches compute them alike (the first is a view, speed only), hence no mutants here.
    if sys.byteorder == "little":  # pragma: no mutate
        ab = keys.view(np.uint64)
    else:
        k64 = keys.astype(np.uint64)
        ab = k64[:, 0::2] | (k64[:, 1::2] << np.uint64(32))
    a, b = ab[:, 0:1], ab[:, 1:2]  # pragma: no mutate - ab has two columns: a longer slice is the same
    z = out.view(np.uint64)
    # Not mutated: a per-thread scratch buffer, reused when large enough (speed only).
    t = getattr(_SCRATCH, "buf", None)  # pragma: no mutate
    if t is None or t.size < z.size:  # pragma: no mutate
        t = _SCRATCH.buf = np.empty(z.size, dtype=np.uint64)
    t = t[: z.size].reshape(z.shape)
    np.add(_STEPS, a, out=z)
    np.bitwise_xor(z, b, out=z)
    for shift, mult in ((30, _MIX1), (27, _MIX2)):
        np.right_shift(z, np.uint64(shift), out=t)
        np.bitwise_xor(z, t, out=z)
        np.multiply(z, mult, out=z)
    np.right_shift(z, np.uint64(31), out=t)
    np.bitwise_xor(z, t, out=z)
    if sys.byteorder == "big":  # word 2k is the low half of output k on every machine
        np.bitwise_or(z << np.uint64(32), z >> np.uint64(32), out=z)
    return out


WORDS_JAX = WORDS_GLOBALS_KEY + 4
"""Node words [2**24 + 4, +16): JAX key data (``SeedTree.jax``)."""
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
    # left = 624, seeded = 1, next = 0: the next 623 draws read words 0..622, then a twist
    # (torch accepts left in 1..624; its own seeding leaves left = 1, a twist first).
    image[8:16] = np.frombuffer(MT_WORDS.to_bytes(4, "little") + (1).to_bytes(4, "little"), dtype=np.uint8)
    image[24 : 24 + 8 * MT_WORDS].view("<u8")[:] = words
    return image


def python_random_state(words: np.ndarray) -> tuple[int, tuple[int, ...], None]:
    """The ``random.setstate`` state whose whole MT19937 state is ``words`` (624 uint32),
    at position ``MT_FRESH`` (the first draws read the words themselves) and with no
    cached Gaussian."""
    return (3, (*(int(w) for w in words[:MT_WORDS]), MT_FRESH), None)
