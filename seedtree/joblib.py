"""``seedtree.joblib``: the public name of ``seedtree.integrations.joblib`` (the same module object)."""

import sys
from typing import TYPE_CHECKING

from .integrations import joblib as _module

if TYPE_CHECKING:
    from .integrations.joblib import *  # noqa: F403

sys.modules[__name__] = _module
