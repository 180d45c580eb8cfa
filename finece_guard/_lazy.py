"""Lazy re-exports for package ``__init__`` modules (PEP 562).

A subpackage lists its public names with the module each lives in; a name is imported on first
access. Importing one small module of a subpackage (``finece_guard.backends.http``) then does not
pull in everything the subpackage offers (sklearn for recalibration, the vLLM launcher ...).
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str], moved: Mapping[str, str] | None = None
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: ``exports`` maps each public name to its module.

    ``moved`` maps names that used to be public here to the module they are imported from now;
    they still resolve, with a DeprecationWarning naming the new import.
    """
    moved = moved or {}

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        if name in moved:
            warnings.warn(
                f"`from {package} import {name}` is deprecated; use `from {moved[name]} import {name}`",
                DeprecationWarning,
                stacklevel=2,
            )
            return getattr(importlib.import_module(moved[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__
