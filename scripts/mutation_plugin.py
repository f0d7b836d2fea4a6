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
