"""The binding layer: RNG-library controllers, the one owner of process-wide state, the
ambient stream, seeding, capture/restore, the execution policy, keyed tasks and the
provenance manifest. Built on ``seedtree.core``; knows no integration or command."""

__all__: list[str] = []
