"""Re-run a low-confidence attempt with other sampling settings, up to a number of attempts.

The n-th retry uses ``temperatures[n-1]`` (the last one repeats) and, when ``seeds`` are given,
``seeds[n-1]``: sampling changes so that the new attempt can differ. The guard keeps the attempt
with the best final confidence, so a retry can never make the answer worse by that measure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from finece_guard import checks
from finece_guard.errors import ConfigError
from finece_guard.runtime.policies import _validate
from finece_guard.runtime.policies.base import CONTINUE, Action, Decision, PolicyView


@dataclass(frozen=True)
class RetryBelow:
    """Retry when the attempt's confidence is below ``threshold`` (or it was aborted)."""

    threshold: float
    max_attempts: int = 3
    temperatures: tuple[float, ...] = (0.7, 1.0)
    seeds: tuple[int, ...] = ()
    name: str = "retry_below"

    def __post_init__(self) -> None:
        _validate.threshold("threshold", self.threshold)
        _validate.at_least("max_attempts", self.max_attempts, 1)
        temps = self.temperatures
        if (
            not isinstance(temps, tuple | list)
            or not temps
            or any(isinstance(t, bool) or not isinstance(t, int | float) or not 0.0 <= t <= 2.0 for t in temps)
        ):
            raise ConfigError(f"temperatures={temps!r}: give at least one number in [0, 2], e.g. (0.7, 1.0)")
        if not isinstance(self.seeds, tuple | list):
            raise ConfigError(f"seeds={self.seeds!r}: give a tuple of integers, e.g. seeds=(1, 2)")
        for seed in self.seeds:
            checks.integer("seeds[]", seed, low=0, example=1)

    def sampling(self, retry_number: int) -> dict[str, Any]:
        """Sampling settings for the ``retry_number``-th retry (1-based)."""
        i = retry_number - 1
        params: dict[str, Any] = {"temperature": self.temperatures[min(i, len(self.temperatures) - 1)]}
        if self.seeds:
            params["seed"] = self.seeds[min(i, len(self.seeds) - 1)]
        return params

    def decide(self, view: PolicyView) -> Decision:
        if view.phase != "attempt_end" or view.attempts_used >= self.max_attempts:
            return CONTINUE
        conf = view.confidence
        if view.aborted or conf is None or conf < self.threshold:
            why = "aborted" if view.aborted else "no score" if conf is None else f"confidence {conf:.3f}"
            return Decision(
                Action.RETRY,
                f"{why} < {self.threshold}; attempt {view.attempts_used + 1} of {self.max_attempts}",
                self.name,
                conf,
                self.sampling(view.attempts_used),
            )
        return CONTINUE
