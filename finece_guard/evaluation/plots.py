"""Figures for evaluation reports: reliability diagram, accuracy-coverage curves, confidence traces.

Why this module exists: calibration and early-warning behaviour are easier to judge by eye than
from one number, and every report should draw them the same way. Figures are built with the
object-oriented matplotlib API on an Agg canvas (``Figure`` + ``FigureCanvasAgg``), never
through ``pyplot``: nothing is shown, no global backend or figure registry is touched (safe in
servers, threads and tests), and each figure is released when the function returns.

matplotlib is an optional dependency (``pip install 'finece-guard[plots]'``); it is imported
when a plot is drawn, so the rest of :mod:`finece_guard.evaluation` works without it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from finece_guard.errors import ConfigError, MetricError, SetupError
from finece_guard.metrics import _prepare, ece

if TYPE_CHECKING:
    from matplotlib.figure import Figure

Array = NDArray[np.float64]

_CORRECT_COLOR = "tab:green"
_WRONG_COLOR = "tab:red"


def _figure(width: float = 6.0, height: float = 4.5) -> Figure:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise SetupError("plots need matplotlib: pip install 'finece-guard[plots]'") from exc
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | os.PathLike[str]) -> Path:
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(target, format="png", bbox_inches="tight")
    except OSError as exc:
        raise ConfigError(f"cannot write plot {target}: {exc}") from exc
    finally:
        fig.clear()
    return target


def reliability_diagram(
    conf: Sequence[float] | Array,
    labels: Sequence[int | bool] | Array,
    path: str | os.PathLike[str],
    n_bins: int = 10,
    title: str = "Reliability diagram",
) -> Path:
    """Accuracy per equal-width confidence bin against the diagonal; returns the PNG written.

    Bins match :func:`finece_guard.metrics.ece`; each bar is labelled with its answer count and
    a marker shows the bin's mean confidence. The title carries ECE and n.
    """
    if n_bins < 1:
        raise ConfigError(f"n_bins={n_bins}: use 1 or more")
    c, y = _prepare(conf, labels)
    error = ece(c, y, n_bins=n_bins)
    bins = np.minimum((c * n_bins).astype(int), n_bins - 1)
    width = 1.0 / n_bins
    centers = (np.arange(n_bins) + 0.5) * width
    counts = np.bincount(bins, minlength=n_bins)
    filled = counts > 0
    acc = np.bincount(bins, weights=y, minlength=n_bins)[filled] / counts[filled]
    mean_conf = np.bincount(bins, weights=c, minlength=n_bins)[filled] / counts[filled]

    fig = _figure()
    ax = fig.add_subplot()
    bars = ax.bar(centers[filled], acc, width=width * 0.9, color="tab:blue", alpha=0.75, label="accuracy")
    ax.plot([0, 1], [0, 1], linestyle="--", color="gray", label="perfect calibration")
    ax.scatter(mean_conf, acc, color="black", marker="x", zorder=3, label="mean confidence")
    for bar, n in zip(bars, counts[filled], strict=True):
        ax.annotate(
            str(int(n)),
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    ax.set(xlim=(0, 1), ylim=(0, 1.08), xlabel="confidence", ylabel="accuracy")
    ax.set_title(f"{title} (ECE = {error:.3f}, n = {c.size})")
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, path)


def accuracy_coverage_plot(
    curves: Mapping[str, Sequence[tuple[Any, ...]]],
    path: str | os.PathLike[str],
    title: str = "Accuracy vs coverage",
) -> Path:
    """One accuracy-coverage line per method; returns the PNG written.

    Each curve is a list of ``(threshold, coverage, accuracy, n_accepted)`` tuples as returned by
    :func:`finece_guard.evaluation.thresholds.accuracy_coverage`; points with NaN accuracy (no
    answer accepted) are skipped.
    """
    if not curves:
        raise MetricError("accuracy_coverage_plot: no curves given")
    fig = _figure()
    ax = fig.add_subplot()
    for name, points in curves.items():
        pts = sorted((float(p[1]), float(p[2])) for p in points if not math.isnan(float(p[2])))
        if not pts:
            raise MetricError(f"accuracy_coverage_plot: curve {name!r} has no point with accepted answers")
        xs, ys = zip(*pts, strict=True)
        ax.plot(xs, ys, marker="." if len(pts) <= 50 else None, label=name)
    ax.set(xlim=(0, 1.02), ylim=(0, 1.02), xlabel="coverage (share of answers accepted)", ylabel="accuracy")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    return _save(fig, path)


def confidence_traces_plot(
    traces: Sequence[tuple[Sequence[float], Sequence[float | None], bool]],
    path: str | os.PathLike[str],
    title: str = "Confidence while the answer streams",
) -> Path:
    """Confidence against position for many answers, correct in green and wrong in red.

    Each trace is ``(xs, confidences, correct)``: ``xs`` are checkpoint positions as a share of
    the answer's tokens in [0, 1], ``confidences`` the raw or refined scores aligned with them
    (None where a checkpoint could not be scored; those points are skipped).
    """
    if not traces:
        raise MetricError("confidence_traces_plot: no traces given")
    fig = _figure(7.0, 4.5)
    ax = fig.add_subplot()
    seen: set[bool] = set()
    for i, (xs, values, correct) in enumerate(traces):
        if len(xs) != len(values):
            raise MetricError(f"trace {i}: {len(xs)} positions but {len(values)} confidences")
        pts = [(float(x), float(v)) for x, v in zip(xs, values, strict=True) if v is not None]
        if not pts:
            continue
        px, py = zip(*pts, strict=True)
        ok = bool(correct)
        ax.plot(
            px,
            py,
            color=_CORRECT_COLOR if ok else _WRONG_COLOR,
            alpha=0.5,
            marker=".",
            linewidth=1,
            label=None if ok in seen else ("correct" if ok else "wrong"),
        )
        seen.add(ok)
    if not seen:
        raise MetricError("confidence_traces_plot: no trace has a scored checkpoint")
    ax.set(xlim=(-0.02, 1.02), ylim=(0, 1.02), xlabel="share of answer tokens", ylabel="confidence")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)
