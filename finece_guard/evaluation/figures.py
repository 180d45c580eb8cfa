"""The report's figures: which plots an evaluation report draws from its records, and their files.

The drawing itself (reliability diagram, traces, accuracy-coverage) is :mod:`.plots`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from finece_guard.backends.recalibration import Recalibrator
from finece_guard.errors import FineCEError
from finece_guard.evaluation.plots import accuracy_coverage_plot, confidence_traces_plot, reliability_diagram
from finece_guard.evaluation.records import AnswerRecord
from finece_guard.evaluation.tables import COVERAGE_METHODS, method_series, paired_values
from finece_guard.evaluation.thresholds import accuracy_coverage


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in name)


def write_plots(
    records: Sequence[AnswerRecord],
    out_dir: Path,
    strategies: Sequence[str],
    *,
    recalibrator: Recalibrator | None,
) -> tuple[list[str], list[str]]:
    """Reliability diagram(s), confidence traces per strategy, accuracy-coverage; returns (files, warnings)."""
    files: list[str] = []
    warnings: list[str] = []
    labels = [int(r.correct) for r in records]

    def attempt(what: str, draw: Callable[[], Path]) -> None:
        try:
            files.append(draw().name)
        except FineCEError as exc:
            warnings.append(f"plot {what} skipped: {exc}")

    full = [r.full_score for r in records]
    attempt("reliability", lambda: reliability_diagram(full, labels, out_dir / "reliability.png",
                                                       title="FineCE, full answer (raw)"))  # fmt: skip
    if recalibrator is not None:
        recal = [float(recalibrator(v)) for v in full]
        attempt("reliability (recalibrated)", lambda: reliability_diagram(
            recal, labels, out_dir / "reliability-recalibrated.png", title=f"FineCE, full answer ({recalibrator.kind})"
        ))  # fmt: skip
    for name in strategies:
        for refined in (False, True):
            traces = []
            for r in records:
                t = r.strategies[name]
                total = max(t.n_tokens[-1], 1)
                traces.append(([n / total for n in t.n_tokens], list(t.bci if refined else t.raw), r.correct))
            suffix = "-bci" if refined else ""
            title = f"FineCE confidence while the answer streams ({name}{', BCI' if refined else ', raw'})"
            path = out_dir / f"traces-{_safe(name)}{suffix}.png"
            attempt(f"traces {name}{suffix}", functools.partial(confidence_traces_plot, traces, path, title=title))
    curves: dict[str, Any] = {}
    for method, values in method_series(records, recalibrator).items():
        conf, lab = paired_values(values, records)
        if conf and method in COVERAGE_METHODS:
            curves[method] = accuracy_coverage(conf, lab)
    if strategies:
        first = strategies[0]
        curves[f"FineCE p(1) {first}"] = accuracy_coverage([r.strategies[first].at("p1") for r in records], labels)
    attempt("accuracy-coverage", lambda: accuracy_coverage_plot(
        curves, out_dir / "accuracy-coverage.png", title="Accuracy of accepted answers as δ moves"))  # fmt: skip
    return files, warnings
