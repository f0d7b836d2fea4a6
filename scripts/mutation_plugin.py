"""A pytest plugin that ``make mutation`` loads into mutmut's test runs (never into ``make test``).

mutmut first runs the tests once with ``MUTANT_UNDER_TEST=stats`` to record which tests reach
which function. Recording reads mutmut's configuration from the working directory, so a child
process the suite starts elsewhere (``seedtree run`` in a temporary folder) would fail to start.
Children record nothing anyway: in that pass the variable is kept in this process only, so
children run the unmutated code. While a mutant is tested the variable stays, so children run
the mutant too.
"""

from __future__ import annotations

import os

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("MUTANT_UNDER_TEST") == "stats":
        from mutmut.mutation.trampoline import set_mutant_under_test

        set_mutant_under_test("stats")  # the process-local copy, which the trampolines read first
        del os.environ["MUTANT_UNDER_TEST"]


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the fastest tests first. mutmut runs a mutant's tests with ``-x``, so a killed
    mutant costs only the tests up to the first failure: starting from the cheap unit tests
    rather than from a CLI test that takes seconds makes most kills a fraction of a second.
    The durations are the ones mutmut recorded in its stats pass (absent before it)."""
    durations = _recorded_durations()
    if durations:
        items.sort(key=lambda item: durations.get(item.nodeid, 0.0))  # stable: ties keep their order


def _recorded_durations() -> dict[str, float]:
    import json

    try:
        with open("mutmut-stats.json", encoding="utf-8") as fh:
            recorded = json.load(fh).get("duration_by_test", {})
    except (OSError, ValueError):
        return {}
    return recorded if isinstance(recorded, dict) else {}
