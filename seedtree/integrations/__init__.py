"""Integrations, one file each, each importing its library lazily. Users import them
under their short public names: ``seedtree.torch``, ``seedtree.joblib``, ``seedtree.pool``,
``seedtree.threads``, ``seedtree.dask``, ``seedtree.ranks``, ``seedtree.ray``,
``seedtree.lightning``, ``seedtree.audit``, ``seedtree.streaming`` (the torch loader for
sharded streams; ``seedtree.torch.loader`` uses it)."""

__all__: list[str] = []
