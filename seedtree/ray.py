"""``seedtree.ray``: the public name of ``seedtree.integrations.ray`` (the same module object)."""

import sys
from typing import TYPE_CHECKING

from .integrations import ray as _module

if TYPE_CHECKING:
    from .integrations.ray import *  # noqa: F403

sys.modules[__name__] = _module
