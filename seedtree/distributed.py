"""Deprecated name of ``seedtree.ranks`` (confusable with Dask's ``distributed``)."""

import sys
import warnings
from typing import TYPE_CHECKING

from .integrations import ranks as _module

if TYPE_CHECKING:
    from .integrations.ranks import *  # noqa: F403

warnings.warn(
    "seedtree.distributed is now seedtree.ranks; the old name will be removed in 0.3",
    DeprecationWarning,
    stacklevel=2,
)
sys.modules[__name__] = _module
