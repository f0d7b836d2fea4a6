"""``seedtree.torch``: the public name of ``seedtree.integrations.torch`` (the same module object)."""

import sys
from typing import TYPE_CHECKING

from .integrations import torch as _module

if TYPE_CHECKING:
    from .integrations.torch import *  # noqa: F403

sys.modules[__name__] = _module
