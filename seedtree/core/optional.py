"""Lazy imports of optional libraries, with an error that says what to install."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["require"]

_INSTALL = {
    "torch": "pip install 'seedtree[torch]'  (or: pip install torch)",
    "joblib": "pip install 'seedtree[joblib]'  (or: pip install joblib)",
    "dask": "pip install 'seedtree[dask]'  (or: pip install 'dask[distributed]')",
    "distributed": "pip install 'seedtree[dask]'  (or: pip install 'dask[distributed]')",
    "scipy": "pip install 'seedtree[stats]'  (or: pip install scipy)",
    "matplotlib": "pip install 'seedtree[plot]'  (or: pip install matplotlib)",
    "mlflow": "pip install 'seedtree[mlflow]'  (or: pip install mlflow-skinny)",
    "lightning": "pip install 'seedtree[lightning]'  (or: pip install lightning)",
    "accelerate": "pip install 'seedtree[accelerate]'  (or: pip install accelerate)",
    "sklearn": "pip install 'seedtree[sklearn]'  (or: pip install scikit-learn)",
    "jax": "pip install 'seedtree[jax]'  (or: pip install jax)",
    "ray": "pip install 'seedtree[ray]'  (or: pip install 'ray[data]')",
    "datasets": "pip install datasets",
}


def require(name: str, feature: str) -> ModuleType:
    """Import ``name`` or raise ImportError naming the feature and the install command."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        hint = _INSTALL.get(name.split(".")[0], f"pip install {name}")
        raise ImportError(f"{feature} needs the optional package '{name}', which is not installed: {hint}") from exc
