"""Where a warning that seedtree raises with ``stacklevel`` should point.

seedtree's warnings point at the caller's line. Under mutmut, every call into a mutated
function passes through mutmut's trampoline, which adds frames between the caller and the
function, so comparing a warning's file with the test's own would fail there for correct
code. ``warn_and_where`` finds, as ``warnings.warn`` is called, the frame the warning must
name, whatever stands between.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from types import FrameType
from typing import Any


def warn_and_where(stacklevel: int, call: Callable[[], object]) -> tuple[list[Any], tuple[str, int]]:
    """The warnings ``call()`` issues, and where the first of them must point if it was issued
    with ``stacklevel``: the frame ``stacklevel - 1`` levels above the one that called
    ``warnings.warn`` (file, line being run)."""
    where: list[tuple[str, int]] = []

    def profile(frame: FrameType, event: str, arg: object) -> None:
        if event == "c_call" and arg is warnings.warn and not where:
            above: FrameType | None = frame
            for _ in range(stacklevel - 1):
                above = above.f_back if above is not None else None
            where.append(("?", 0) if above is None else (above.f_code.co_filename, above.f_lineno))

    previous = sys.getprofile()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sys.setprofile(profile)
        try:
            call()
        finally:
            sys.setprofile(previous)
    assert where, "no warnings.warn call was seen"
    return caught, where[0]


def trampolined(fn: object) -> bool:
    """Whether ``fn`` runs behind mutmut's trampoline (a mutation run)."""
    return hasattr(fn, "__wrapped__")
