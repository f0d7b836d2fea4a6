"""The map-style and the stream loader take their layout arguments the same way: one check
of ``batch_size``, ``rank`` and ``world_size``, and ranks read when each epoch starts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _workloads import MixedDataset, read_jsonl, write_jsonl_shards

from seedtree import SeedTree
from seedtree.streaming import ShardedStream
from seedtree.torch import loader

TREE = SeedTree(61)


def _stream(tmp_path: Path) -> ShardedStream:
    return ShardedStream(write_jsonl_shards(tmp_path, [5, 4, 6, 3]), read_jsonl, lanes=4)


def _ids(batches: object) -> list[int]:
    return [int(i) for batch in batches for i in batch["id"]]  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", ["map", "stream"])
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, r"batch_size must be a positive int, got 0"),
        ({"batch_size": True}, r"batch_size must be a positive int, got True"),
        ({"batch_size": 2.0}, r"batch_size must be a positive int, got 2.0"),
        ({"rank": 1}, r"give rank together with world_size, or neither"),
        ({"world_size": 2}, r"give rank together with world_size, or neither"),
        ({"rank": 2, "world_size": 2}, r"rank 2 must be an int in \[0, world_size=2\)"),
        ({"rank": 0, "world_size": 0}, r"world_size must be a positive int, got 0"),
    ],
)
def test_both_loaders_refuse_the_same_layout_arguments_alike(
    tmp_path: Path, kind: str, kwargs: dict[str, object], message: str
) -> None:
    dataset = MixedDataset() if kind == "map" else _stream(tmp_path)
    with pytest.raises(ValueError, match=message):
        loader(dataset, TREE, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["map", "stream"])
def test_a_numpy_batch_size_is_a_batch_size_in_both(tmp_path: Path, kind: str) -> None:
    dataset = MixedDataset(8) if kind == "map" else _stream(tmp_path)

    def rows(dl: object) -> list[object]:
        return [(b["id"] if kind == "stream" else b).tolist() for b in dl]  # type: ignore[attr-defined]

    plain, numpy = rows(loader(dataset, TREE, batch_size=2)), rows(loader(dataset, TREE, batch_size=np.int64(2)))
    assert numpy == plain and max(len(b) for b in numpy) == 2  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["map", "stream"])
def test_both_loaders_read_the_ranks_when_the_epoch_starts(
    tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A loader made before the launcher's ranks are known (here: before RANK/WORLD_SIZE
    are set, as before torch.distributed starts) serves the rank it finds when the epoch
    starts, not the single process it saw when it was made."""
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    if kind == "map":
        dataset: object = MixedDataset(12)
        ids = lambda dl: [int(i) for batch in dl for i in batch[0]]  # noqa: E731
    else:
        dataset = _stream(tmp_path)
        ids = _ids
    early = loader(dataset, TREE, batch_size=2)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    expected = ids(loader(dataset, TREE, batch_size=2, rank=1, world_size=2))
    single = ids(loader(dataset, TREE, batch_size=2, rank=0, world_size=1))
    assert ids(early) == expected and expected != single


@pytest.mark.parametrize("kind", ["map", "stream"])
def test_both_loaders_can_be_made_before_the_ranks_are_known(
    tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """WORLD_SIZE set but RANK not yet (a launcher's environment before torch.distributed
    starts): both loaders are made, and the first epoch says what is missing."""
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    dataset = MixedDataset(8) if kind == "map" else _stream(tmp_path)
    dl = loader(dataset, TREE, batch_size=2)
    with pytest.raises(ValueError, match=r"WORLD_SIZE=2 but RANK is not set"):
        next(iter(dl))
