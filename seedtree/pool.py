"""``seedtree.pool``: the public name of ``seedtree.integrations.pool`` (the same module object)."""

import sys
from typing import TYPE_CHECKING

from .integrations import pool as _module

if TYPE_CHECKING:
    from .integrations.pool import *  # noqa: F403

sys.modules[__name__] = _module
