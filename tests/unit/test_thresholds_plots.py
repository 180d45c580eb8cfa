"""Unit tests for finece_guard.evaluation.thresholds and .plots on small hand-made sets."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from finece_guard.errors import ConfigError, MetricError
from finece_guard.evaluation.plots import accuracy_coverage_plot, confidence_traces_plot, reliability_diagram
from finece_guard.evaluation.thresholds import (
    AbortThreshold,
    AcceptThreshold,
    abort_tradeoff,
    accuracy_coverage,
    suggest_abort_threshold,
    suggest_accept_threshold,
)

# --------------------------------------------------------------------------- accept thresholds

CONF = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
LAB = [1, 1, 0, 1, 0, 0]
# accept conf >= δ:
#   δ=0.4: 6 accepted, 3 correct -> coverage 1,   accuracy 0.5
#   δ=0.5: 5 accepted, 3 correct -> coverage 5/6, accuracy 0.6
#   δ=0.6: 4 accepted, 3 correct -> coverage 4/6, accuracy 0.75
#   δ=0.7: 3 accepted, 2 correct -> coverage 3/6, accuracy 2/3
#   δ=0.8: 2 accepted, 2 correct -> coverage 2/6, accuracy 1
#   δ=0.9: 1 accepted, 1 correct -> coverage 1/6, accuracy 1


def test_accuracy_coverage_hand_computed() -> None:
    curve = accuracy_coverage(CONF, LAB)
    assert [p.threshold for p in curve] == pytest.approx([0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    assert [p.coverage for p in curve] == pytest.approx([1, 5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6])
    assert [p.accuracy for p in curve] == pytest.approx([0.5, 0.6, 0.75, 2 / 3, 1.0, 1.0])
    assert [p.n_accepted for p in curve] == [6, 5, 4, 3, 2, 1]
    delta, cov, acc, n = curve[2]  # plain tuples too
    assert (delta, cov, acc, n) == pytest.approx((0.6, 4 / 6, 0.75, 4))


def test_accuracy_coverage_explicit_thresholds() -> None:
    curve = accuracy_coverage(CONF, LAB, thresholds=[0.55, 0.95])
    assert curve[0].n_accepted == 4 and curve[0].accuracy == pytest.approx(0.75)
    assert curve[1].n_accepted == 0 and curve[1].coverage == 0.0 and math.isnan(curve[1].accuracy)


def test_suggest_accept_threshold_smallest_delta() -> None:
    s = suggest_accept_threshold(CONF, LAB, 0.75)
    assert isinstance(s, AcceptThreshold)
    assert (s.threshold, s.coverage, s.precision, s.n_accepted) == pytest.approx((0.6, 4 / 6, 0.75, 4))
    assert suggest_accept_threshold(CONF, LAB, 0.7).threshold == pytest.approx(0.6)
    s = suggest_accept_threshold(CONF, LAB, 0.8)  # 0.7 gives 2/3 < 0.8, so δ=0.8
    assert s.threshold == pytest.approx(0.8) and s.coverage == pytest.approx(1 / 3) and s.n_accepted == 2
    assert suggest_accept_threshold(CONF, LAB, 0.5).threshold == pytest.approx(0.4)


def test_suggest_accept_threshold_unreachable_names_best() -> None:
    # with at least 3 accepted, precisions are 0.5, 0.6, 0.75, 0.667 -> best 0.75 at δ=0.6
    with pytest.raises(MetricError, match=r"best precision reachable is 0\.750 \(δ=0\.600"):
        suggest_accept_threshold(CONF, LAB, 0.9, min_accepted=3)
    with pytest.raises(ConfigError):
        suggest_accept_threshold(CONF, LAB, 1.5)
    with pytest.raises(MetricError, match="empty"):
        suggest_accept_threshold([], [], 0.9)


# --------------------------------------------------------------------------- abort thresholds

EARLY = [0.1, 0.2, 0.3, 0.6, 0.7, 0.8]
ELAB = [0, 0, 1, 0, 1, 1]
TOTAL = [100, 80, 120, 60, 90, 50]  # 500 tokens in all
AT = [20, 20, 30, 20, 30, 10]  # remaining after the checkpoint: 80, 60, 90, 40, 60, 40
# abort when early < θ:
#   θ=0.1: none                                  saved 0
#   θ=0.2: {0} wrong                             saved 80           correct lost 0
#   θ=0.3: {0,1} wrong                           saved 140 (0.28)   correct lost 0
#   θ=0.6: + answer 2 (correct)                  saved 140          correct lost 1/3
#   θ=0.7: + answer 3 (wrong)                    saved 180 (0.36)   correct lost 1/3, all 3 wrong aborted
#   θ=0.8: + answer 4 (correct)                  saved 180          correct lost 2/3
#   θ=0.8+: everything                           saved 180          correct lost 1


def test_abort_tradeoff_curve() -> None:
    curve = abort_tradeoff(EARLY, ELAB, TOTAL, AT)
    assert len(curve) == 7
    assert [p.n_aborted for p in curve] == [0, 1, 2, 3, 4, 5, 6]
    assert [p.tokens_saved for p in curve] == [0, 80, 140, 140, 180, 180, 180]
    assert [p.correct_lost_share for p in curve] == pytest.approx([0, 0, 0, 1 / 3, 1 / 3, 2 / 3, 1])
    assert [p.wrong_aborted_share for p in curve] == pytest.approx([0, 1 / 3, 2 / 3, 2 / 3, 1, 1, 1])
    assert curve[-1].threshold > 0.8


def test_suggest_abort_threshold_no_correct_lost() -> None:
    s = suggest_abort_threshold(EARLY, ELAB, TOTAL, AT, max_correct_lost=0.0)
    assert isinstance(s, AbortThreshold)
    assert s.threshold == 0.3
    assert s.tokens_saved_share == pytest.approx(140 / 500)
    assert s.wrong_aborted_share == pytest.approx(2 / 3)
    assert s.correct_lost_share == 0.0
    assert (s.n_aborted, s.tokens_saved) == (2, 140)


def test_suggest_abort_threshold_allowing_one_loss() -> None:
    # 1/3 loss allowed (exactly, float tolerance): θ=0.7 saves 180 of 500 tokens; θ=0.6 saves less
    for allowed in (1 / 3, 0.34, 0.5):
        s = suggest_abort_threshold(EARLY, ELAB, TOTAL, AT, max_correct_lost=allowed)
        assert s.threshold == pytest.approx(0.7)
        assert s.tokens_saved_share == pytest.approx(0.36)
        assert s.wrong_aborted_share == 1.0
        assert s.correct_lost_share == pytest.approx(1 / 3)
    # everything allowed: savings plateau at 180 from θ=0.7, the smallest θ on the plateau wins
    assert suggest_abort_threshold(EARLY, ELAB, TOTAL, AT, max_correct_lost=1.0).threshold == pytest.approx(0.7)


def test_abort_errors() -> None:
    with pytest.raises(MetricError, match="after the answer's end"):
        abort_tradeoff([0.1, 0.2], [0, 1], [10, 10], [5, 11])
    with pytest.raises(MetricError, match="integer token counts"):
        abort_tradeoff([0.1, 0.2], [0, 1], [10.0, 10.0], [5, 5])  # type: ignore[list-item]
    with pytest.raises(MetricError, match="one per answer"):
        abort_tradeoff([0.1, 0.2], [0, 1], [10], [5])
    with pytest.raises(ConfigError):
        suggest_abort_threshold(EARLY, ELAB, TOTAL, AT, max_correct_lost=1.5)


# --------------------------------------------------------------------------- plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 2000


def test_plots_write_png_and_leave_no_open_figures(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    rng = np.random.default_rng(0)
    conf = rng.uniform(0, 1, 200)
    labels = (rng.uniform(0, 1, 200) < conf).astype(int)

    p1 = reliability_diagram(conf, labels, tmp_path / "a" / "b" / "rel.png", n_bins=5, title="test")
    p2 = accuracy_coverage_plot(
        {"raw": accuracy_coverage(conf, labels), "squared": accuracy_coverage(conf**2, labels)}, tmp_path / "ac.png"
    )
    p3 = confidence_traces_plot(
        [([0.0, 0.5, 1.0], [0.5, None, 0.9], True), ([0.0, 0.4, 1.0], [0.6, 0.3, 0.1], False)],
        tmp_path / "traces.png",
    )
    assert p1 == tmp_path / "a" / "b" / "rel.png"
    for p in (p1, p2, p3):
        assert_png(p)
    assert plt.get_fignums() == before


def test_plot_errors(tmp_path: Path) -> None:
    with pytest.raises(MetricError):
        reliability_diagram([], [], tmp_path / "x.png")
    with pytest.raises(MetricError, match="no curves"):
        accuracy_coverage_plot({}, tmp_path / "x.png")
    with pytest.raises(MetricError, match="no traces"):
        confidence_traces_plot([], tmp_path / "x.png")
    with pytest.raises(MetricError, match="2 positions but 3 confidences"):
        confidence_traces_plot([([0.0, 1.0], [0.1, 0.2, 0.3], True)], tmp_path / "x.png")
    with pytest.raises(MetricError, match="no trace has a scored checkpoint"):
        confidence_traces_plot([([0.0], [None], True)], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
