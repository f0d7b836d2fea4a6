"""A stream loader's saved state: its shape, checked field by field before anything is
resumed (a damaged or foreign state is refused with the reason), and the merge of the
states of several ranks into one."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.keys import KEY_LIMIT
from .stream_sources import STREAM_STATE_FORMAT

__all__ = ["merge_stream_states"]

_IDENTITY_KEYS = (
    "format",
    "n_shards",
    "n_lanes",
    "batch_size",
    "shuffle",
    "shuffle_buffer",
    "drop_last",
    "entropy",
    "path",
)
_STATE_KEYS = frozenset({*_IDENTITY_KEYS, "epoch", "lanes"})
_LANE_KEYS = frozenset({"shard", "position", "buffer", "draws", "batches", "done"})
DAMAGED = "the state is damaged: resume from the state_dict() as it was saved"
_COUNT_LIMIT = 2**63  # batches and draws: far past any run, and within what PCG64's advance takes


def show(value: Any) -> str:
    """``value`` for an error message: short, and safe for ints too long for ``repr``."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**30:
        return f"{'-' if value < 0 else ''}<a {value.bit_length()}-bit int>"
    try:
        text = repr(value)
    except (ValueError, RecursionError):
        return f"<a {type(value).__name__}>"
    return text if len(text) <= 60 else text[:57] + "..."


def _check_keys(value: dict[Any, Any], expected: frozenset[str], name: str) -> None:
    """Refuse a dict without exactly the ``expected`` keys, naming the first missing or extra one."""
    missing = sorted(expected - set(value))
    if missing:
        raise ValueError(f"{name} has no {missing[0]!r} (missing {missing}); " + DAMAGED)
    extra = [k for k in value if k not in expected]
    if extra:
        raise ValueError(f"{name} has an unexpected key {show(extra[0])}; " + DAMAGED)


def _int_field(value: Any, name: str, limit: int) -> int:
    """``value`` as an int in [0, limit); else ValueError naming the field."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an int, got {type(value).__name__} {show(value)}; " + DAMAGED)
    if not 0 <= value < limit:
        raise ValueError(f"{name}={show(value)} must be in [0, {limit}); " + DAMAGED)
    return int(value)


def _lane_shape(saved: Any, name: str) -> dict[str, Any]:
    """A lane state with exactly its keys and types, as plain ints and lists."""
    if not isinstance(saved, dict):
        raise ValueError(f"{name} must be a dict or None, got {type(saved).__name__} {show(saved)}")
    _check_keys(saved, _LANE_KEYS, name)
    buffer = saved["buffer"]
    if isinstance(buffer, np.ndarray):
        buffer = buffer.tolist()
    if not isinstance(buffer, (list, tuple)):
        raise ValueError(f"{name}.buffer must be a list of [shard, position] pairs, got {type(buffer).__name__}")
    pairs = []
    for i, pair in enumerate(buffer):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise ValueError(f"{name}.buffer[{i}] must be a [shard, position] pair, got {show(pair)}")
        pairs.append(
            [
                _int_field(pair[0], f"{name}.buffer[{i}][0]", KEY_LIMIT),
                _int_field(pair[1], f"{name}.buffer[{i}][1]", KEY_LIMIT),
            ]
        )
    if not isinstance(saved["done"], bool):
        raise ValueError(f"{name}.done must be True or False, got {show(saved['done'])}; " + DAMAGED)
    return {
        "shard": _int_field(saved["shard"], f"{name}.shard", KEY_LIMIT),
        "position": _int_field(saved["position"], f"{name}.position", KEY_LIMIT),
        "buffer": pairs,
        "draws": _int_field(saved["draws"], f"{name}.draws", _COUNT_LIMIT),
        "batches": _int_field(saved["batches"], f"{name}.batches", _COUNT_LIMIT),
        "done": saved["done"],
    }


def state_shape(state: Any, name: str) -> dict[str, Any]:
    """A stream state with exactly its keys, an epoch that is a path key, and ``n_lanes``
    lanes each None or a well-formed lane state (a copy; ``state`` is not changed)."""
    if not isinstance(state, dict) or state.get("format") != STREAM_STATE_FORMAT:
        raise ValueError(f"{name} is not a stream state (expected format={STREAM_STATE_FORMAT!r} from state_dict())")
    _check_keys(state, _STATE_KEYS, name)
    epoch = _int_field(state["epoch"], f"{name} epoch", KEY_LIMIT)
    n_lanes, lanes = state["n_lanes"], state["lanes"]
    if isinstance(n_lanes, bool) or not isinstance(n_lanes, int) or n_lanes < 1:
        raise ValueError(f"{name} n_lanes={show(n_lanes)} must be a positive int; " + DAMAGED)
    if not isinstance(lanes, (list, tuple)) or len(lanes) != n_lanes:
        got = f"{len(lanes)} entries" if isinstance(lanes, (list, tuple)) else f"a {type(lanes).__name__}"
        raise ValueError(f"{name} lanes must be a list of n_lanes={n_lanes} entries, got {got}; " + DAMAGED)
    checked = [None if s is None else _lane_shape(s, f"{name} lanes[{i}]") for i, s in enumerate(lanes)]
    return dict(state, epoch=epoch, lanes=checked)


def merge_stream_states(states: list[dict[str, Any]]) -> dict[str, Any]:
    """One state from every rank's ``state_dict()``: each lane's position from the rank that
    ran it. A rank whose lanes had all finished (its state already at the next epoch) counts
    as having finished them in the common epoch. Refuses (ValueError naming the field) a
    damaged state, states of different runs or epochs, and a lane given by two states."""
    if not isinstance(states, (list, tuple)) or not states:
        raise ValueError("merge_stream_states needs a non-empty list of the ranks' state_dict()s")
    checked = [state_shape(s, f"stream state #{i}") for i, s in enumerate(states)]
    first = checked[0]
    epoch = min(s["epoch"] for s in checked)
    merged = dict(first, epoch=epoch, lanes=[None] * len(first["lanes"]))
    for i, s in enumerate(checked):
        for k in _IDENTITY_KEYS:
            if s[k] != first[k] or type(s[k]) is not type(first[k]):
                raise ValueError(
                    f"stream state #{i} has {k}={show(s[k])} but #0 has {show(first[k])}: these come from "
                    "different streams, batching or trees; merge one run's"
                )
        later = s["epoch"] - epoch
        apart = f"stream states from epochs {epoch} and {s['epoch']} cannot be merged: save them at the same step"
        if later not in (0, 1):
            raise ValueError(apart)
        for lane, saved in enumerate(s["lanes"]):
            if saved is None:
                continue
            if merged["lanes"][lane] is not None:
                raise ValueError(
                    f"stream state #{i} gives lane {lane} again (an earlier state has it): pass each rank's state once"
                )
            if later:
                if saved["batches"] or saved["shard"] or saved["position"]:
                    raise ValueError(apart)
                saved = dict(saved, done=True)
            merged["lanes"][lane] = saved
    return merged
