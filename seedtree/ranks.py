"""``seedtree.ranks``: the public name of ``seedtree.integrations.ranks`` (the same module object)."""

import sys
from typing import TYPE_CHECKING

from .integrations import ranks as _module

if TYPE_CHECKING:
    from .integrations.ranks import *  # noqa: F403

sys.modules[__name__] = _module
