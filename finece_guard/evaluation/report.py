"""The evaluation report: every table and suggestion from the harness's records, and its files.

Why this module exists: the records (:mod:`finece_guard.evaluation.records`) hold raw numbers per
answer; a reader needs them summarised the way the FineCE paper does, with the uncertainty that
small evaluation sets carry, and with enough context to reproduce the run.
:func:`build_report` gathers the tables (:mod:`.tables`), the run's context and its warnings into
one JSON-ready dict; :func:`write_report` draws the figures (:mod:`.figures`) and writes
``report.json`` and ``report.md`` (:mod:`.markdown`). Pure apart from writing files.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from finece_guard.adapters import AdapterManifest
from finece_guard.backends.recalibration import Recalibrator
from finece_guard.errors import FineCEError, MetricError
from finece_guard.evaluation.figures import write_plots
from finece_guard.evaluation.markdown import fmt_cell, render_markdown
from finece_guard.evaluation.records import BASELINES, AnswerRecord
from finece_guard.evaluation.settings import EvalConfig
from finece_guard.evaluation.tables import (
    FINECE_FULL,
    recalibration_section,
    strategy_names,
    table_four,
    table_one,
    table_two,
    thresholds_section,
)

#: moved to :mod:`.tables` / :mod:`.markdown`; importable from here as before
__all__ = [
    "FINECE_FULL",
    "adapter_info",
    "build_report",
    "fmt_cell",
    "machine_info",
    "render_markdown",
    "report_json",
    "write_report",
]


def adapter_info(path: str | None) -> dict[str, Any]:
    """Where the FineCE adapter is and what its manifest says (``trained`` is None when unknown)."""
    info: dict[str, Any] = {"path": path, "on_this_machine": False, "trained": None, "base_model": None, "note": ""}
    if path is None:
        info["note"] = "the server did not say which adapter it serves"
        return info
    folder = Path(path)
    if not folder.is_dir():
        info["note"] = "folder not on this machine; manifest not read"
        return info
    info["on_this_machine"] = True
    try:
        manifest = AdapterManifest.read(folder)
    except FineCEError as exc:
        info["note"] = str(exc)
        return info
    info.update(trained=manifest.trained, base_model=manifest.base_model, note=manifest.note)
    return info


def machine_info() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }


# --------------------------------------------------------------------------- the report


def build_report(
    records: Sequence[AnswerRecord],
    *,
    config: EvalConfig | None = None,
    info: dict[str, Any] | None = None,
    recalibrator: Recalibrator | None = None,
    recalibration_source: dict[str, Any] | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
    target_precision: float = 0.8,
    max_correct_lost: float = 0.05,
    token_savings: float = 0.1,
    comparison: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Every table and suggestion as a JSON-ready dict (plots are drawn by :func:`write_report`).

    ``comparison`` is :func:`finece_guard.evaluation.compare.comparison_section`'s result, when the
    same answers were re-scored by a reference adapter.
    """
    if not records:
        raise MetricError("no evaluated answers to report on; run the evaluation first (or raise --limit)")
    strategies = strategy_names(records, config)
    per_task: dict[str, int] = {}
    for r in records:
        per_task[r.task] = per_task.get(r.task, 0) + 1
    warnings: list[str] = []
    if min(per_task.values()) < 30:
        warnings.append(
            f"small evaluation sets (n per task: {per_task}): intervals are wide and 10-bin ECE is noisy; "
            "use --limit 100 or more for conclusions"
        )
    truncated = sum(1 for r in records if r.finish_reason == "length")
    if truncated:
        warnings.append(f"{truncated} of {len(records)} answers hit max_tokens; they are judged and scored as they are")
    seconds = [r.seconds for r in records]
    run = {
        **(info or {}),
        "n_per_task": per_task,
        "n_total": len(records),
        "truncated_answers": truncated,
        "answer_seconds": {"mean": float(np.mean(seconds)), "total": float(np.sum(seconds))},
    }
    adapter = run.get("adapter") or {}
    if adapter.get("trained") is False:
        warnings.insert(0, "the FineCE adapter is UNTRAINED (its manifest says trained=false): its scores are the "
                           "prompted base model's, not calibrated confidence")  # fmt: skip
    report: dict[str, Any] = {
        "run": run,
        "settings": config.to_meta() if config is not None else None,
        "table1": table_one(records, recalibrator=recalibrator, n_resamples=n_resamples, seed=seed),
        "table2": table_two(records, strategies, n_resamples=n_resamples, seed=seed),
        "table4": table_four(records, strategies),
        "recalibration": None,
        "adapter_comparison": comparison,
        "thresholds": thresholds_section(
            records,
            strategies,
            recalibrator=recalibrator,
            target_precision=target_precision,
            max_correct_lost=max_correct_lost,
            token_savings=token_savings,
        ),
        "baseline_failures": {name: sum(1 for r in records if r.baselines.get(name) is None) for name in BASELINES},
        "warnings": warnings,
        "bootstrap": {"n_resamples": n_resamples, "level": 0.95, "seed": seed},
        "plots": [],
    }
    if recalibrator is not None:
        report["recalibration"] = recalibration_section(
            records, recalibrator, recalibration_source or {}, n_resamples=n_resamples, seed=seed
        )
    return report


def write_report(
    report: dict[str, Any],
    records: Sequence[AnswerRecord],
    out_dir: Path,
    *,
    recalibrator: Recalibrator | None = None,
    plots: bool = True,
) -> list[Path]:
    """Draw the plots, then write ``report.json`` and ``report.md`` into ``out_dir``; returns the files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = report.get("settings") or {}
    strategies = list(settings.get("strategies") or (records[0].strategies if records else []))
    if plots:
        files, warnings = write_plots(records, out_dir, strategies, recalibrator=recalibrator)
        report["plots"] = files
        report["warnings"] = [*report["warnings"], *warnings]
    json_path = out_dir / "report.json"
    json_path.write_text(report_json(report), encoding="utf-8")
    md_path = out_dir / "report.md"
    md_path.write_text(render_markdown(report), encoding="utf-8")
    return [json_path, md_path, *(out_dir / f for f in report["plots"])]


def report_json(report: dict[str, Any]) -> str:
    """The report as ``report.json`` holds it."""
    return json.dumps(report, indent=2, default=_json_default)


def _json_default(obj: object) -> object:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
