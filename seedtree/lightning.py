"""``seedtree.lightning``: the public name of ``seedtree.integrations.lightning`` (the same module object)."""

import sys
from typing import TYPE_CHECKING

from .integrations import lightning as _module

if TYPE_CHECKING:
    from .integrations.lightning import *  # noqa: F403

sys.modules[__name__] = _module
