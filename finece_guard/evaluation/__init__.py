"""Evaluation: FineCE against baselines on the same answers, as the paper's tables.

* :mod:`.settings` — :class:`EvalConfig`, what the harness does per question;
* :mod:`.harness` — one greedy answer per question, scored by FineCE and every baseline
  (:func:`evaluate_question`, :func:`run_eval` over a resumable journal);
* :mod:`.records` — the record schema (:class:`AnswerRecord`) and :func:`read_records`;
* :mod:`.generator` — what the harness asks of the generator (:class:`ServedEvalGenerator`);
* :mod:`.baselines` — the baseline formulas; :mod:`.baseline_run` runs them on one answer;
* :mod:`.compare` — re-scoring the same answers with a reference adapter;
* :mod:`.tables` — Tables I / II / IV, recalibration and threshold sections;
* :mod:`.thresholds` — accuracy-coverage and early-abort trade-offs, suggested thresholds;
* :mod:`.report` — the whole report and its files; :mod:`.markdown` and :mod:`.figures` render it;
* :mod:`.plots` — reliability diagram, accuracy-coverage curves, confidence traces (needs matplotlib).

Metrics are :mod:`finece_guard.metrics`; recalibration lives next to the scorers that apply it
(:mod:`finece_guard.backends.recalibration`). Names are imported on first use.
"""

from typing import TYPE_CHECKING

from finece_guard._lazy import lazy_exports

if TYPE_CHECKING:
    from finece_guard.evaluation.baselines import (
        first_prob,
        lowest_group_conf,
        lowest_group_confidence_raw,
        majority_agreement,
        mean_entropy_conf,
        mean_token_prob,
        min_token_prob,
        parse_verbalized,
        ptrue_messages,
        read_ptrue,
        self_consistency,
        token_confidences,
        verbalized_messages,
    )
    from finece_guard.evaluation.compare import comparison_section, rescore_records
    from finece_guard.evaluation.generator import EvalGenerator, ServedEvalGenerator
    from finece_guard.evaluation.harness import EvalRunReport, evaluate_question, run_eval
    from finece_guard.evaluation.markdown import render_markdown
    from finece_guard.evaluation.plots import accuracy_coverage_plot, confidence_traces_plot, reliability_diagram
    from finece_guard.evaluation.records import AnswerRecord, StateScore, StrategyTrace, read_records, records_path
    from finece_guard.evaluation.report import build_report, write_report
    from finece_guard.evaluation.settings import EvalConfig
    from finece_guard.evaluation.thresholds import (
        AbortThreshold,
        AcceptThreshold,
        CoveragePoint,
        abort_tradeoff,
        accuracy_coverage,
        suggest_abort_threshold,
        suggest_accept_threshold,
    )

_EXPORTS = {
    "AbortThreshold": "finece_guard.evaluation.thresholds",
    "AcceptThreshold": "finece_guard.evaluation.thresholds",
    "AnswerRecord": "finece_guard.evaluation.records",
    "CoveragePoint": "finece_guard.evaluation.thresholds",
    "EvalConfig": "finece_guard.evaluation.settings",
    "EvalGenerator": "finece_guard.evaluation.generator",
    "EvalRunReport": "finece_guard.evaluation.harness",
    "ServedEvalGenerator": "finece_guard.evaluation.generator",
    "StateScore": "finece_guard.evaluation.records",
    "StrategyTrace": "finece_guard.evaluation.records",
    "abort_tradeoff": "finece_guard.evaluation.thresholds",
    "accuracy_coverage": "finece_guard.evaluation.thresholds",
    "accuracy_coverage_plot": "finece_guard.evaluation.plots",
    "build_report": "finece_guard.evaluation.report",
    "comparison_section": "finece_guard.evaluation.compare",
    "confidence_traces_plot": "finece_guard.evaluation.plots",
    "evaluate_question": "finece_guard.evaluation.harness",
    "first_prob": "finece_guard.evaluation.baselines",
    "lowest_group_conf": "finece_guard.evaluation.baselines",
    "lowest_group_confidence_raw": "finece_guard.evaluation.baselines",
    "majority_agreement": "finece_guard.evaluation.baselines",
    "mean_entropy_conf": "finece_guard.evaluation.baselines",
    "mean_token_prob": "finece_guard.evaluation.baselines",
    "min_token_prob": "finece_guard.evaluation.baselines",
    "parse_verbalized": "finece_guard.evaluation.baselines",
    "ptrue_messages": "finece_guard.evaluation.baselines",
    "read_ptrue": "finece_guard.evaluation.baselines",
    "read_records": "finece_guard.evaluation.records",
    "records_path": "finece_guard.evaluation.records",
    "reliability_diagram": "finece_guard.evaluation.plots",
    "render_markdown": "finece_guard.evaluation.markdown",
    "rescore_records": "finece_guard.evaluation.compare",
    "run_eval": "finece_guard.evaluation.harness",
    "self_consistency": "finece_guard.evaluation.baselines",
    "suggest_abort_threshold": "finece_guard.evaluation.thresholds",
    "suggest_accept_threshold": "finece_guard.evaluation.thresholds",
    "token_confidences": "finece_guard.evaluation.baselines",
    "verbalized_messages": "finece_guard.evaluation.baselines",
    "write_report": "finece_guard.evaluation.report",
}
#: moved to :mod:`finece_guard.backends` (still importable from here, with a DeprecationWarning)
_MOVED = {
    "RECALIBRATION_FILE": "finece_guard.backends.recalibration",
    "IsotonicRecalibrator": "finece_guard.backends.recalibration",
    "PlattRecalibrator": "finece_guard.backends.recalibration",
    "Recalibrator": "finece_guard.backends.recalibration",
    "load_recalibrator": "finece_guard.backends.recalibration",
    "recalibrator_for_adapter": "finece_guard.backends.recalibration",
    "recalibrator_from_dict": "finece_guard.backends.recalibration",
}

__all__ = [
    "AbortThreshold",
    "AcceptThreshold",
    "AnswerRecord",
    "CoveragePoint",
    "EvalConfig",
    "EvalGenerator",
    "EvalRunReport",
    "ServedEvalGenerator",
    "StateScore",
    "StrategyTrace",
    "abort_tradeoff",
    "accuracy_coverage",
    "accuracy_coverage_plot",
    "build_report",
    "comparison_section",
    "confidence_traces_plot",
    "evaluate_question",
    "first_prob",
    "lowest_group_conf",
    "lowest_group_confidence_raw",
    "majority_agreement",
    "mean_entropy_conf",
    "mean_token_prob",
    "min_token_prob",
    "parse_verbalized",
    "ptrue_messages",
    "read_ptrue",
    "read_records",
    "records_path",
    "reliability_diagram",
    "render_markdown",
    "rescore_records",
    "run_eval",
    "self_consistency",
    "suggest_abort_threshold",
    "suggest_accept_threshold",
    "token_confidences",
    "verbalized_messages",
    "write_report",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, _MOVED)
