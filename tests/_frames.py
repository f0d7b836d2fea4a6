"""Which file a warning raised with ``stacklevel=2`` by seedtree should name.

seedtree's deprecation warnings point at the caller's line. A test checks that by calling
seedtree directly and comparing the warning's file with its own. Under mutmut, every call
into a mutated function passes through mutmut's trampoline, one frame more, so there the
right answer is the trampoline's file (and ``stacklevel=3`` would name the test's file).
"""

from __future__ import annotations

import sys


def blamed_file(test_file: str) -> str:
    """The file that a ``stacklevel=2`` warning, raised by a seedtree function that the test
    in ``test_file`` called directly, names."""
    trampoline = sys.modules.get("mutmut.mutation.trampoline")
    return trampoline.__file__ if trampoline is not None and trampoline.__file__ else test_file
