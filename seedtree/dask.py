"""``seedtree.dask``: the public name of ``seedtree.integrations.dask`` (the same module object)."""

import sys
from typing import TYPE_CHECKING

from .integrations import dask as _module

if TYPE_CHECKING:
    from .integrations.dask import *  # noqa: F403

sys.modules[__name__] = _module
