"""Independence battery: interleaved multi-stream sources, own tests, external batteries.

``check(scheme, streams, n_bytes, batteries, root)`` builds ``streams`` streams of a scheme
(``seedtree``, ``numpy-spawn``, the negative controls, or your function ``i -> Generator``),
interleaves them word by word, runs the batteries and returns a ``Report`` whose verdict
follows the rule in ``seedtree.stats.verdict``. ``seedtree check`` and ``seedtree stream``
are the command-line faces (``seedtree.stats.commands``).

Needs scipy (``pip install 'seedtree[stats]'``); importing this package does not.
"""

from __future__ import annotations

from .check import BATTERIES, check
from .external import BatteryUnavailable, tool_status
from .report import Report
from .schemes import CONTROLS, GOOD, SCHEMES, Scheme, get_scheme, user_scheme
from .source import Interleaved, first_outputs
from .verdict import ALPHA, RULE, holm

__all__ = [
    "ALPHA",
    "BATTERIES",
    "CONTROLS",
    "GOOD",
    "RULE",
    "SCHEMES",
    "BatteryUnavailable",
    "Interleaved",
    "Report",
    "Scheme",
    "check",
    "first_outputs",
    "get_scheme",
    "holm",
    "tool_status",
    "user_scheme",
]
