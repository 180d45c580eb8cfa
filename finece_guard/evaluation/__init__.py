"""Evaluation tools: baseline confidences, recalibration, operating thresholds and plots.

Why this package exists: to judge FineCE, an evaluation harness scores the *same* generated
answers with FineCE and with cheaper baselines, recalibrates them on a held-out split, compares
them with :mod:`finece_guard.metrics`, picks thresholds and draws the figures. This package holds
the pure, model-free parts of that; the harness does generation and HTTP calls.

* :mod:`.baselines`: First-Prob, token-probability, entropy, DeepConf, P(True), verbalized,
  self-consistency confidences, each in [0, 1].
* :mod:`.recalibration`: isotonic and Platt recalibrators saved as JSON.
* :mod:`.thresholds`: accuracy-coverage and early-abort trade-offs, suggested thresholds.
* :mod:`.plots`: reliability diagram, accuracy-coverage curves, confidence traces (needs matplotlib).

Not imported here (they do I/O and pull in the data loaders): :mod:`.harness`, which generates and
scores answers into resumable JSONL records, and :mod:`.report`, which turns records into the
paper-shaped tables, threshold suggestions and figures (``finece-guard eval``).
"""

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
from finece_guard.evaluation.plots import accuracy_coverage_plot, confidence_traces_plot, reliability_diagram
from finece_guard.evaluation.recalibration import (
    RECALIBRATION_FILE,
    IsotonicRecalibrator,
    PlattRecalibrator,
    Recalibrator,
    load_recalibrator,
    recalibrator_for_adapter,
    recalibrator_from_dict,
)
from finece_guard.evaluation.thresholds import (
    AbortThreshold,
    AcceptThreshold,
    CoveragePoint,
    abort_tradeoff,
    accuracy_coverage,
    suggest_abort_threshold,
    suggest_accept_threshold,
)

__all__ = [
    "RECALIBRATION_FILE",
    "AbortThreshold",
    "AcceptThreshold",
    "CoveragePoint",
    "IsotonicRecalibrator",
    "PlattRecalibrator",
    "Recalibrator",
    "abort_tradeoff",
    "accuracy_coverage",
    "accuracy_coverage_plot",
    "confidence_traces_plot",
    "first_prob",
    "load_recalibrator",
    "lowest_group_conf",
    "lowest_group_confidence_raw",
    "majority_agreement",
    "mean_entropy_conf",
    "mean_token_prob",
    "min_token_prob",
    "parse_verbalized",
    "ptrue_messages",
    "read_ptrue",
    "recalibrator_for_adapter",
    "recalibrator_from_dict",
    "reliability_diagram",
    "self_consistency",
    "suggest_abort_threshold",
    "suggest_accept_threshold",
    "token_confidences",
    "verbalized_messages",
]
