"""``seedtree.testing``: the public name of ``seedtree.integrations.loader_check`` (the same module object)."""

import sys
from typing import TYPE_CHECKING

from .integrations import loader_check as _module

if TYPE_CHECKING:
    from .integrations.loader_check import *  # noqa: F403

sys.modules[__name__] = _module
