"""``seedtree.streaming``: the public name of ``seedtree.integrations.streaming`` (the same module object)."""

import sys
from typing import TYPE_CHECKING

from .integrations import streaming as _module

if TYPE_CHECKING:
    from .integrations.streaming import *  # noqa: F403

sys.modules[__name__] = _module
