"""finece_guard: fine-grained confidence (FineCE) guards for LangChain chains on vLLM.

The public surface is what ``__all__`` lists (pinned by ``tests/unit/test_public_api.py``);
everything else is private and may change.
"""

from finece_guard.adapters import AdapterManifest, check_binding
from finece_guard.backends.base import BaseScorer
from finece_guard.backends.openai_generator import OpenAICompatGenerator
from finece_guard.backends.openai_scorer import OpenAICompatScorer
from finece_guard.backends.transformers_scorer import TransformersScorer
from finece_guard.backends.vllm_server import ServeSpec, VLLMServer
from finece_guard.config import FineCESettings, load_settings
from finece_guard.errors import (
    AdapterMismatchError,
    BackendConnectionError,
    BackendError,
    BackendHTTPError,
    BackendTimeoutError,
    ConfigError,
    FineCEError,
    GenerationAborted,
    MetricError,
    PortInUseError,
    ScoreReadoutError,
    ServerError,
    ServerStartError,
    SetupError,
)
from finece_guard.metrics import Interval, accuracy, auroc, bootstrap, brier, ece
from finece_guard.prompts import ScoreScale, build_scorer_messages
from finece_guard.runtime.bci import LookAhead, integrate_paths, look_ahead, refine
from finece_guard.runtime.checkpoints import CheckpointStrategy, Entropy, ParagraphEnd, Periodic, parse_strategy
from finece_guard.runtime.guard import Attempt, FineCEGuard, GuardResult, GuardTrace
from finece_guard.runtime.handler import FineCECallbackHandler
from finece_guard.runtime.monitor import RunMonitor, stream_with_confidence
from finece_guard.runtime.policies import (
    AbortBelow,
    AcceptAbove,
    Action,
    Budget,
    Decision,
    Policy,
    PolicyView,
    RetrieveBelow,
    RetryBelow,
)
from finece_guard.types import Checkpoint, CheckpointKind, Score, ScoredCheckpoint, TokenEvent, Trace

__version__ = "0.1.0"

__all__ = [
    "AbortBelow",
    "AcceptAbove",
    "Action",
    "AdapterManifest",
    "AdapterMismatchError",
    "Attempt",
    "BackendConnectionError",
    "BackendError",
    "BackendHTTPError",
    "BackendTimeoutError",
    "BaseScorer",
    "Budget",
    "Checkpoint",
    "CheckpointKind",
    "CheckpointStrategy",
    "ConfigError",
    "Decision",
    "Entropy",
    "FineCECallbackHandler",
    "FineCEError",
    "FineCEGuard",
    "FineCESettings",
    "GenerationAborted",
    "GuardResult",
    "GuardTrace",
    "Interval",
    "LookAhead",
    "MetricError",
    "OpenAICompatGenerator",
    "OpenAICompatScorer",
    "ParagraphEnd",
    "Periodic",
    "Policy",
    "PolicyView",
    "PortInUseError",
    "RetrieveBelow",
    "RetryBelow",
    "RunMonitor",
    "Score",
    "ScoreReadoutError",
    "ScoreScale",
    "ScoredCheckpoint",
    "ServeSpec",
    "ServerError",
    "ServerStartError",
    "SetupError",
    "TokenEvent",
    "Trace",
    "TransformersScorer",
    "VLLMServer",
    "accuracy",
    "auroc",
    "bootstrap",
    "brier",
    "build_scorer_messages",
    "check_binding",
    "ece",
    "integrate_paths",
    "load_settings",
    "look_ahead",
    "parse_strategy",
    "refine",
    "stream_with_confidence",
]
