"""The public surface is explicit and pinned: changing it must be a deliberate edit here."""

import finece_guard

EXPECTED = [
    "AbortBelow", "AcceptAbove", "Action", "AdapterManifest", "AdapterMismatchError", "Attempt",
    "BackendConnectionError", "BackendError", "BackendHTTPError", "BackendTimeoutError", "BaseScorer", "Budget",
    "Checkpoint", "CheckpointKind", "CheckpointStrategy", "ConfigError", "Decision", "Entropy",
    "FineCECallbackHandler", "FineCEError", "FineCEGuard", "FineCESettings", "GenerationAborted", "GuardResult",
    "GuardTrace", "Interval", "LookAhead", "MetricError", "OpenAICompatGenerator", "OpenAICompatScorer", "ParagraphEnd",
    "Periodic", "Policy", "PolicyView", "PortInUseError", "RetrieveBelow", "RetryBelow", "RunMonitor", "Score",
    "ScoreReadoutError", "ScoreScale", "ScoredCheckpoint", "ServeSpec", "ServerError", "ServerStartError",
    "SetupError", "TokenEvent", "Trace", "TransformersScorer", "VLLMServer", "accuracy", "auroc", "bootstrap",
    "brier", "build_scorer_messages", "check_binding", "ece", "integrate_paths", "load_settings", "look_ahead",
    "parse_strategy", "refine", "stream_with_confidence",
]  # fmt: skip


def test_all_is_pinned_and_sorted() -> None:
    assert finece_guard.__all__ == EXPECTED
    assert sorted(finece_guard.__all__) == finece_guard.__all__


def test_every_name_resolves() -> None:
    for name in finece_guard.__all__:
        assert getattr(finece_guard, name) is not None, name


def test_exception_tree() -> None:
    from finece_guard import errors as e

    assert issubclass(e.ConfigError, ValueError) and issubclass(e.ConfigError, e.FineCEError)
    assert issubclass(e.PortInUseError, e.ServerError)
    assert issubclass(e.ScoreReadoutError, e.BackendError)
    assert issubclass(e.GenerationAborted, e.FineCEError)
    for cls in (e.BackendConnectionError, e.BackendTimeoutError, e.BackendHTTPError):
        assert issubclass(cls, e.BackendError)
