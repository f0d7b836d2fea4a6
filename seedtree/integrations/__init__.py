"""Integrations, one file each, each importing its library lazily. Users import them
under their short public names: ``seedtree.torch``, ``seedtree.joblib``, ``seedtree.pool``,
``seedtree.threads``, ``seedtree.dask``, ``seedtree.ranks``, ``seedtree.ray``, ``seedtree.audit``."""
