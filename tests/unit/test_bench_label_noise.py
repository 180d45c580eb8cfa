"""benchmarks/label_noise.py: the noise share of binomial fraction labels is estimated without bias."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.label_noise import RELIABILITY_GOAL, noise_stats


def _labels(true_p: np.ndarray, k: int, seed: int) -> list[float]:
    return list(np.random.default_rng(seed).binomial(k, true_p) / k)


@pytest.mark.parametrize(("spread", "k"), [(0.05, 8), (0.3, 8), (0.3, 32)])
def test_reliability_matches_the_simulated_truth(spread: float, k: int) -> None:
    rng = np.random.default_rng(1)
    true_p = np.clip(rng.normal(0.4, spread, 20_000), 0.0, 1.0)
    stats = noise_stats(_labels(true_p, k, seed=2), [k] * true_p.size)
    noise = float(np.mean(true_p * (1 - true_p))) / k
    expected = float(np.var(true_p)) / (float(np.var(true_p)) + noise)
    assert stats["reliability"] == pytest.approx(expected, abs=0.03)
    assert stats["brier_floor"] == pytest.approx(noise, rel=0.05)
    # the suggested k reaches the goal on the same true p
    k_goal = stats["k_for_reliability_goal"]
    achieved = float(np.var(true_p)) / (float(np.var(true_p)) + float(np.mean(true_p * (1 - true_p))) / k_goal)
    assert achieved >= RELIABILITY_GOAL - 0.03


def test_noise_free_labels_are_fully_reliable_and_bad_input_is_refused() -> None:
    stats = noise_stats([0.0, 1.0, 0.0, 1.0], [8, 8, 8, 8])
    assert stats["noise_share"] == 0.0 and stats["reliability"] == 1.0 and stats["brier_floor"] == 0.0
    with pytest.raises(ValueError, match="k >= 2"):
        noise_stats([0.5, 0.5], [1, 1])
