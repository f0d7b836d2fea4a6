"""Interleaved multi-stream sources, streamed in chunks with bounded memory.

The field's standard way to test many streams at once: take word ``t`` of stream 0, word
``t`` of stream 1, ..., word ``t`` of stream k-1, then word ``t+1`` of each, and so on, and
test the result as one long stream. Any dependence between streams becomes a dependence
between nearby words. A chunk is a whole number of such rows (C order, shape (rows, k)
flattened), so row ``t`` / column ``i`` of ``chunk.reshape(-1, k)`` is word ``t`` of stream ``i``.

The "first outputs" stream is the other classic view: the first few words of child 0,
then of child 1, 2, ... It exposes weak seed hashing (related seeds give related first
outputs) that a long interleaved run of few streams can dilute.

Memory is ``O(k + chunk)`` whatever the total size: streams are generated on demand.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from .schemes import Scheme, get_scheme

__all__ = ["DEFAULT_CHUNK_BYTES", "FIRST_BATCH", "Interleaved", "MAX_STREAMS", "first_outputs"]

DEFAULT_CHUNK_BYTES = 4 << 20
MAX_STREAMS = 1 << 20
FIRST_BATCH = 4096  # children built at once for the first-outputs stream


def _rows_per_chunk(streams: int, chunk_bytes: int) -> int:
    # At least 256 rows, so per-stream calls stay amortised when k is large.
    return max(256, chunk_bytes // (8 * streams))


class Interleaved:
    """``streams`` streams of ``scheme`` (for ``root``) interleaved word by word.

    Guarantees: the words are exactly the streams' own words in order (the same bytes for
    any chunk size); memory holds the k streams plus one chunk.
    """

    def __init__(
        self,
        scheme: str | Scheme | Callable[[int], np.random.Generator],
        streams: int,
        root: int,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        first_stream: int = 0,
    ) -> None:
        if isinstance(streams, bool) or not isinstance(streams, (int, np.integer)) or not 1 <= streams <= MAX_STREAMS:
            raise ValueError(f"streams must be an int in [1, {MAX_STREAMS}], got {streams!r}")
        if chunk_bytes < 8:
            raise ValueError(f"chunk_bytes must be at least 8, got {chunk_bytes}")
        self.scheme = get_scheme(scheme)
        self.k = int(streams)
        self.root = int(root)
        self.rows = _rows_per_chunk(self.k, chunk_bytes)
        self._streams = self.scheme.streams(self.root, range(first_stream, first_stream + self.k))

    def next_block(self, rows: int) -> np.ndarray:
        """The next ``rows`` words of every stream as a ``(rows, k)`` array (row t = word t
        of each stream). It is a transposed view of stream-major memory: each stream fills
        one contiguous row, and the tests read it either way without a copy."""
        block = np.empty((self.k, rows), dtype=np.uint64)
        for j, stream in enumerate(self._streams):
            block[j] = stream.take(rows)
        return block.T

    def blocks(self, rows: int | None = None) -> Iterator[np.ndarray]:
        """``(rows, k)`` blocks of up to ``self.rows`` rows; ``rows`` in total, endless if None."""
        left = rows
        while left is None or left > 0:
            n = self.rows if left is None else min(self.rows, left)
            yield self.next_block(n)
            if left is not None:
                left -= n

    def chunks(self, n_words: int | None = None) -> Iterator[np.ndarray]:
        """The interleaved words themselves (contiguous uint64), ``n_words`` in total (a
        multiple of k), endless if None."""
        if n_words is not None and n_words % self.k:
            raise ValueError(f"n_words={n_words} is not a whole number of rows of {self.k} streams")
        for block in self.blocks(None if n_words is None else n_words // self.k):
            yield np.ascontiguousarray(block).reshape(-1)


def first_outputs(
    scheme: str | Scheme | Callable[[int], np.random.Generator],
    root: int,
    children: int | None,
    words: int = 4,
    start: int = 0,
) -> Iterator[np.ndarray]:
    """The first ``words`` words of child ``start``, then of ``start + 1``, ... (``children``
    of them, endless if None), as ``(words, n)`` blocks of up to ``FIRST_BATCH`` children:
    column i is child i's first words, so the block reads like ``Interleaved`` blocks with
    children as streams. ``block.T.reshape(-1)`` is the stream's bytes in order."""
    if words < 1:
        raise ValueError(f"words per child must be at least 1, got {words}")
    resolved = get_scheme(scheme)
    lo = start
    end = None if children is None else start + children
    while end is None or lo < end:
        hi = lo + FIRST_BATCH if end is None else min(lo + FIRST_BATCH, end)
        streams = resolved.streams(int(root), range(lo, hi))
        block = np.empty((hi - lo, words), dtype=np.uint64)
        for j, stream in enumerate(streams):
            block[j] = stream.take(words)
        yield block.T
        lo = hi
