"""``seedtree.threads``: the public name of ``seedtree.integrations.threads`` (the same module object)."""

import sys
from typing import TYPE_CHECKING

from .integrations import threads as _module

if TYPE_CHECKING:
    from .integrations.threads import *  # noqa: F403

sys.modules[__name__] = _module
