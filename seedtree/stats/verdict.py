"""The verdict rule: family-wise false-alarm control, then a re-test before any FAIL.

Stage 1. All p-values of one run (every test of every battery asked for) form one family.
Holm's step-down procedure at level ``ALPHA`` flags tests: sort the m p-values,
``p(1) <= ... <= p(m)``; flag ``p(j)`` while ``p(j) <= ALPHA / (m - j + 1)``, stop at the
first that is not. For independent streams the chance that *anything* is flagged is at
most ``ALPHA`` whatever the dependence between the tests (Holm 1979). Nothing flagged:
PASS.

Stage 2. Something flagged is only *suspicious*: the whole run is repeated on fresh data
(a new root, derived from the first by a hash; for a user scheme, the next k streams) and
judged by the same Holm rule. FAIL only if the re-test flags something too. The two runs
are independent, so a good scheme FAILs with probability at most ``ALPHA**2`` (1e-4)
and is reported suspicious-then-passed with probability at most ``ALPHA`` (1%).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

__all__ = ["ALPHA", "RULE", "holm", "retest_root"]

ALPHA = 0.01

RULE = (
    f"Holm step-down over all p-values of a run at family-wise level {ALPHA}; anything flagged is "
    "suspicious and the run is repeated with a new root; FAIL only if the re-test flags a test too "
    f"(false FAIL rate <= {ALPHA}**2 = {ALPHA**2:g}, false 'suspicious' rate <= {ALPHA})"
)


def holm(pvalues: Sequence[float], alpha: float = ALPHA, extra: int = 0) -> list[bool]:
    """Which p-values Holm's procedure rejects at family-wise level ``alpha``.

    NaN p-values (skipped tests) are never rejected and do not count; ``extra`` adds
    tests to the family size that are known to be unremarkable (PractRand does not print
    the p-values of tests without anomalies).
    """
    valid = [(p, i) for i, p in enumerate(pvalues) if not math.isnan(p)]
    m = len(valid) + extra
    rejected = [False] * len(pvalues)
    for j, (p, i) in enumerate(sorted(valid)):
        if p <= alpha / (m - j):
            rejected[i] = True
        else:
            break
    return rejected


def retest_root(root: int, attempt: int = 1) -> int:
    """A fresh 128-bit root for the re-test, derived from ``root`` by SHA-256 (not by the
    scheme under test, and far from ``root`` so additive schemes do not overlap)."""
    digest = hashlib.sha256(f"seedtree-check-retest/{root}/{attempt}".encode()).digest()
    return int.from_bytes(digest[:16], "little")
