"""Argument checks at the public boundary: one :class:`~finece_guard.errors.ConfigError` per bad value.

User input (constructor arguments, policy thresholds, questions) is checked where it enters the
library, so a bad value fails at once with a message that names the argument, echoes what was
passed and shows a valid example, instead of a bare ``TypeError`` deep inside, or a NaN deadline
that never fires. Every check returns the value normalised (``float`` / ``int`` / ``str``).
"""

from __future__ import annotations

import math
from numbers import Integral, Real

from finece_guard.errors import ConfigError


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _fail(name: str, value: object, rule: str, example: object) -> ConfigError:
    return ConfigError(f"{name}={_shown(value)}: {rule}, e.g. {name}={example!r}")


def _number(name: str, value: object, rule: str, example: object) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise _fail(name, value, f"{rule} (got a {type(value).__name__})", example)
    out = float(value)
    if math.isnan(out):
        raise _fail(name, value, rule, example)
    return out


def seconds(name: str, value: object, *, example: float = 30.0) -> float:
    """A duration in seconds: a finite number > 0."""
    rule = "must be a finite number of seconds > 0"
    out = _number(name, value, rule, example)
    if not math.isfinite(out) or out <= 0:
        raise _fail(name, value, rule, example)
    return out


def optional_seconds(name: str, value: object, *, example: float = 30.0) -> float | None:
    """``None`` (no limit) or a duration in seconds (finite, > 0)."""
    if value is None:
        return None
    try:
        return seconds(name, value, example=example)
    except ConfigError as exc:
        raise ConfigError(f"{exc} (or None for no limit)") from None


def probability(name: str, value: object, *, example: float = 0.3) -> float:
    """A confidence or threshold in [0, 1] (a real number, not a string, not NaN)."""
    rule = "must be a number in [0, 1]"
    out = _number(name, value, rule, example)
    if not 0.0 <= out <= 1.0:
        raise _fail(name, value, rule, example)
    return out


def integer(name: str, value: object, *, low: int, high: int | None = None, example: int | None = None) -> int:
    """An integer (``int`` or e.g. ``numpy.int64``; not a bool, not a float) in ``[low, high]``."""
    shown_example = example if example is not None else max(low, 1) if high is None or high >= 1 else low
    rule = f"must be an integer >= {low}" if high is None else f"must be an integer in [{low}, {high}]"
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise _fail(name, value, f"{rule} (got a {type(value).__name__})", shown_example)
    out = int(value)
    if out < low or (high is not None and out > high):
        raise _fail(name, value, rule, shown_example)
    return out


def text(name: str, value: object, *, example: str) -> str:
    """A non-blank string."""
    if not isinstance(value, str):
        raise _fail(name, value, f"must be a non-empty string (got a {type(value).__name__})", example)
    if not value.strip():
        raise _fail(name, value, "must be a non-empty string (it is blank)", example)
    return value
