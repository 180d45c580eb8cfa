"""Argument checks shared by the built-in policies (clear errors that say how to fix the call)."""

from __future__ import annotations

from finece_guard.errors import ConfigError


def threshold(name: str, value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name}={value!r}: a confidence threshold must be in [0, 1] (e.g. 0.3)")
    return float(value)


def at_least(name: str, value: int, low: int) -> int:
    if value < low:
        raise ConfigError(f"{name}={value!r} must be at least {low}")
    return int(value)


def lookahead(name: str, value: object) -> None:
    from finece_guard.runtime.bci import LookAhead

    if value is not None and not isinstance(value, LookAhead):
        raise ConfigError(f"{name}={value!r}: pass None or LookAhead(width=4, depth=1)")
