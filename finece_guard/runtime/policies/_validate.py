"""Argument checks shared by the built-in policies (clear errors that say how to fix the call)."""

from __future__ import annotations

from finece_guard import checks
from finece_guard.errors import ConfigError


def threshold(name: str, value: float) -> float:
    """A confidence threshold: a real number in [0, 1] (not a string, not NaN)."""
    return checks.probability(name, value, example=0.3)


def at_least(name: str, value: int, low: int) -> int:
    """An ``int`` (not a bool or float) of at least ``low``."""
    return checks.integer(name, value, low=low)


def lookahead(name: str, value: object) -> None:
    from finece_guard.runtime.bci import LookAhead

    if value is not None and not isinstance(value, LookAhead):
        raise ConfigError(f"{name}={value!r}: pass None or LookAhead(width=4, depth=1)")
