"""Path keys: validation and encoding into SeedSequence spawn-key words.

Guarantee: two different paths never share spawn-key words, except by a 128-bit hash
collision between string/bytes keys (or an int path chosen to spell out such a hash):
for n distinct string keys the chance of any alias is below n**2 / 2**129, the same order
as SeedSequence's own 128-bit pool.

- An int key in [0, 2**32) is one word, itself, so an all-int path *is* NumPy's spawn_key.
- A str key is four words: BLAKE2b-128 of its UTF-8 bytes under the personalisation
  ``seedtree:str``; bytes keys use ``seedtree:bytes``, so ``"a"`` and ``b"a"`` differ.
- Ints outside [0, 2**32), bools, floats and anything else are rejected: NumPy would turn
  ``2**32`` into the two words ``(0, 1)``, silently aliasing the path ``(0, 1)``.
"""

from __future__ import annotations

import hashlib
import numbers

import numpy as np

__all__ = ["KEY_LIMIT", "check_int_keys", "check_key", "key_words"]

Key = int | str | bytes
KEY_LIMIT = 1 << 32


def _hash_words(data: bytes, person: bytes) -> tuple[int, ...]:
    digest = hashlib.blake2b(data, digest_size=16, person=person).digest()
    return tuple(int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4))


def check_key(key: object, position: int) -> Key:
    """Return the canonical form of one path key, or raise a TypeError/ValueError that
    names the key, its position in the path and the fix."""
    if isinstance(key, (bool, np.bool_)):
        raise TypeError(
            f"path key #{position} is the bool {key!r}; bools are not keys (True would alias 1). "
            "Use an int such as int(flag) or a str such as 'on'/'off'."
        )
    if isinstance(key, numbers.Integral):
        key = int(key)
        if not 0 <= key < KEY_LIMIT:
            raise ValueError(
                f"path key #{position} ({key}) is outside [0, 2**32). NumPy would split it into "
                "several 32-bit words and alias a longer path. Split it yourself into keys "
                "below 2**32 (e.g. tree / (k >> 32) / (k & 0xFFFFFFFF)) or use str(k)."
            )
        return key
    if isinstance(key, str):
        return str(key)  # a str subclass (np.str_) becomes a plain str: same key, small pickle
    if isinstance(key, (bytes, bytearray, memoryview)):
        return bytes(key)
    raise TypeError(
        f"path key #{position} ({key!r}) has type {type(key).__name__}; keys are ints in "
        "[0, 2**32), str or bytes. Convert it first, e.g. str(x) for a float or a name."
    )


def key_words(key: Key) -> tuple[int, ...]:
    """The spawn-key words of one canonical key."""
    if isinstance(key, int):
        return (key,)
    if isinstance(key, str):
        encoded = key.encode(
            "utf-8",  # pragma: no mutate - Python reads a codec's name case-blind ("UTF-8")
            "surrogatepass",
        )
        return _hash_words(encoded, b"seedtree:str")
    return _hash_words(key, b"seedtree:bytes")


def check_int_keys(keys: object, start_position: int) -> np.ndarray:
    """Validate an array-like of int keys for vectorised derivation; returns uint32 (n,) or
    (n, depth). Raises like ``check_key`` for a bad entry: the lowest if one is negative,
    else the highest, at its column's position."""
    arr = np.asarray(keys)
    if arr.dtype == np.bool_ or arr.dtype.kind not in ("i", "u"):
        if arr.dtype == object or arr.dtype.kind in ("U", "S"):
            raise TypeError(
                "vectorised keys must be an integer array; for str keys derive one child "
                "at a time (tree / name) or map names to ints first"
            )
        raise TypeError(
            f"vectorised keys must be an integer array in [0, 2**32), got dtype {arr.dtype}; "
            "convert with np.asarray(keys, dtype=np.uint32) after checking the range"
        )
    if arr.ndim not in (1, 2):
        raise ValueError(f"keys must have shape (n,) or (n, depth), got {arr.shape}")
    if arr.size and arr.dtype != np.uint32:
        low, high = arr.min(), arr.max()
        if low < 0 or high >= KEY_LIMIT:
            bad = int(low) if low < 0 else int(high)
            where = int(np.flatnonzero((arr < 0) | (arr >= KEY_LIMIT))[0])
            column = where % arr.shape[1] if arr.ndim == 2 else 0
            check_key(bad, start_position + column)  # raises with the standard message
    return arr.astype(
        np.uint32,
        copy=False,  # pragma: no mutate - a copy or not: the same keys
    )
