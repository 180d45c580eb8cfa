"""The public surface is explicit and pinned: changing it must be a deliberate edit here.

The top level holds what a chain author uses; serving, evaluation, training, data and metrics are
imported from their subpackages, each pinned below.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import warnings

import pytest

import finece_guard

EXPECTED = [
    "AbortBelow", "AcceptAbove", "Action", "AdapterMismatchError", "Attempt", "BackendConnectionError",
    "BackendError", "BackendHTTPError", "BackendTimeoutError", "BaseScorer", "Budget", "Checkpoint", "CheckpointKind",
    "CheckpointStrategy", "ConfigError", "Decision", "Entropy", "FineCECallbackHandler", "FineCEError", "FineCEGuard",
    "FineCESettings", "GenerationAborted", "GuardResult", "GuardTrace", "LookAhead", "MetricError",
    "OpenAICompatGenerator", "OpenAICompatScorer", "ParagraphEnd", "Periodic", "Policy", "PolicyView",
    "PortInUseError", "RetrieveBelow", "RetryBelow", "Score", "ScoreReadoutError", "ScoredCheckpoint", "ServerError",
    "ServerStartError", "SetupError", "TokenEvent", "Trace", "TransformersScorer", "load_settings", "parse_strategy",
    "stream_with_confidence",
]  # fmt: skip

SUBPACKAGES: dict[str, list[str]] = {
    "finece_guard.backends": [
        "RECALIBRATION_FILE", "BaseScorer", "IsotonicRecalibrator", "OpenAICompatGenerator", "OpenAICompatScorer",
        "PlattRecalibrator", "Recalibrator", "ServeSpec", "ServedModel", "TransformersScorer", "VLLMServer",
        "load_recalibrator", "recalibrator_for_adapter", "recalibrator_from_dict", "served_recalibrator",
        "server_models",
    ],
    "finece_guard.evaluation": [
        "AbortThreshold", "AcceptThreshold", "AnswerRecord", "CoveragePoint", "EvalConfig", "EvalGenerator",
        "EvalRunReport", "ServedEvalGenerator", "StateScore", "StrategyTrace", "abort_tradeoff", "accuracy_coverage",
        "accuracy_coverage_plot", "build_report", "comparison_section", "confidence_traces_plot", "evaluate_question",
        "first_prob", "lowest_group_conf", "lowest_group_confidence_raw", "majority_agreement", "mean_entropy_conf",
        "mean_token_prob", "min_token_prob", "parse_verbalized", "ptrue_messages", "read_ptrue", "read_records",
        "records_path", "reliability_diagram", "render_markdown", "rescore_records", "run_eval", "self_consistency",
        "suggest_abort_threshold", "suggest_accept_threshold", "token_confidences", "verbalized_messages",
        "write_report",
    ],
    "finece_guard.training": [
        "BaseModel", "PromptEncoder", "TrainConfig", "TrainReport", "TrainingExample", "check_disjoint",
        "examples_from", "expected_level", "resolve_base_model", "soft_target", "split_by_question", "train_adapter",
    ],
    "finece_guard.data": [
        "CHOICE_INSTRUCTION", "COMMIT_PREFIX", "CONTEXT_TEMPLATE", "MATH_INSTRUCTION", "OPEN_INSTRUCTION",
        "PARTITIONS", "TASKS", "YESNO_INSTRUCTION", "AnswerKind", "ChoiceCommitter", "CommittingSampler", "Partition",
        "QARecord", "answer_span", "commit_answer", "extract_choice", "extract_final",
        "extract_number", "extract_yes_no", "is_correct", "load_task", "mmlu_subjects", "normalize_text",
        "partition_of",
    ],
    "finece_guard.metrics": [
        "UNCHECKED", "Interval", "accuracy", "accuracy_unchecked", "auroc", "auroc_unchecked", "bootstrap",
        "bootstrap_indices", "brier", "brier_unchecked", "ece", "ece_unchecked",
    ],
}  # fmt: skip


def test_all_is_pinned_and_sorted() -> None:
    assert finece_guard.__all__ == EXPECTED
    assert sorted(finece_guard.__all__) == finece_guard.__all__


def test_every_name_resolves() -> None:
    for name in finece_guard.__all__:
        assert getattr(finece_guard, name) is not None, name


@pytest.mark.parametrize("package", sorted(SUBPACKAGES))
def test_subpackage_all_is_pinned_and_resolves(package: str) -> None:
    module = importlib.import_module(package)
    assert module.__all__ == SUBPACKAGES[package]
    for name in module.__all__:
        assert getattr(module, name) is not None, f"{package}.{name}"


def test_moved_names_still_resolve_with_a_warning_naming_the_new_import() -> None:
    from finece_guard.backends.vllm_server import VLLMServer
    from finece_guard.metrics import ece
    from finece_guard.runtime.bci import refine

    for name, expected, where in (("ece", ece, "finece_guard.metrics"), ("refine", refine, "finece_guard.runtime.bci"),
                                  ("VLLMServer", VLLMServer, "finece_guard.backends")):  # fmt: skip
        with pytest.warns(DeprecationWarning, match=f"from {where} import {name}"):
            assert getattr(finece_guard, name) is expected
    with pytest.raises(AttributeError):
        _ = finece_guard.no_such_name  # type: ignore[attr-defined]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in EXPECTED:  # the current surface never warns
            getattr(finece_guard, name)


def test_the_top_level_import_stays_light() -> None:
    """A chain author's ``import finece_guard`` loads no torch, sklearn or matplotlib (offline tools do)."""
    code = "import sys, finece_guard; print(sorted(m for m in ('torch', 'sklearn', 'matplotlib') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"


def test_exception_tree() -> None:
    from finece_guard import errors as e

    assert issubclass(e.ConfigError, ValueError) and issubclass(e.ConfigError, e.FineCEError)
    assert issubclass(e.PortInUseError, e.ServerError)
    assert issubclass(e.ScoreReadoutError, e.BackendError)
    assert issubclass(e.GenerationAborted, e.FineCEError)
    for cls in (e.BackendConnectionError, e.BackendTimeoutError, e.BackendHTTPError):
        assert issubclass(cls, e.BackendError)
