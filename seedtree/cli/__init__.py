"""The command line, ``seedtree run | verify | doctor | show | diff | demo | check | stream``.

``seedtree.cli.handover`` is the child side of ``seedtree run --record``: importing
``seedtree`` arms it in every process of the recorded command. The parser itself is
imported only when a command runs.
"""

from __future__ import annotations

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run the ``seedtree`` command with ``argv`` (default: ``sys.argv[1:]``)."""
    from .commands import main as run_main

    return run_main(argv)
