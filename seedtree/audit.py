"""``seedtree.audit``: the public name of ``seedtree.integrations.audit`` (the same module object)."""

import sys
from typing import TYPE_CHECKING

from .integrations import audit as _module

if TYPE_CHECKING:
    from .integrations.audit import *  # noqa: F403

sys.modules[__name__] = _module
