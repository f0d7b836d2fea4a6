"""The package's version, here so that every layer can name it without importing the
package facade (which imports every layer). ``pyproject.toml`` states it too; a test
checks that the two agree."""

from __future__ import annotations

__all__ = ["VERSION"]

VERSION = "0.1.0"
