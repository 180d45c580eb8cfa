"""finece_guard: fine-grained confidence (FineCE) guards for LangChain chains on vLLM.

The top level holds what a chain author uses: the guard and its callback handler, the scorers
(and the generator that samples look-ahead paths), checkpoint strategies, policies, settings,
errors and the result types. Everything else is imported from its subpackage, each with its own
pinned ``__all__`` (``tests/unit/test_public_api.py``):

* :mod:`finece_guard.backends` — scorers, the generator, the vLLM launcher, recalibration;
* :mod:`finece_guard.evaluation` — the harness, baselines, report, thresholds, plots;
* :mod:`finece_guard.training` — LoRA training of the FineCE adapter (``training`` extra);
* :mod:`finece_guard.data` — offline QA datasets, answer checkers, data construction;
* :mod:`finece_guard.metrics` — ECE, AUROC, Brier, accuracy, bootstrap intervals;
* :mod:`finece_guard.runtime` — BCI, the monitor, decider and session behind the guard.

Names that used to be here and moved still resolve, with a DeprecationWarning naming the new import.
"""

from finece_guard._lazy import lazy_exports
from finece_guard.backends.base import BaseScorer
from finece_guard.backends.openai_generator import OpenAICompatGenerator
from finece_guard.backends.openai_scorer import OpenAICompatScorer
from finece_guard.backends.transformers_scorer import TransformersScorer
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
from finece_guard.runtime.bci import LookAhead
from finece_guard.runtime.checkpoints import CheckpointStrategy, Entropy, ParagraphEnd, Periodic, parse_strategy
from finece_guard.runtime.guard import Attempt, FineCEGuard, GuardResult, GuardTrace
from finece_guard.runtime.handler import FineCECallbackHandler
from finece_guard.runtime.monitor import stream_with_confidence
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
    "Score",
    "ScoreReadoutError",
    "ScoredCheckpoint",
    "ServerError",
    "ServerStartError",
    "SetupError",
    "TokenEvent",
    "Trace",
    "TransformersScorer",
    "load_settings",
    "parse_strategy",
    "stream_with_confidence",
]

#: moved to their subpackages in 0.1 (issue 13): name -> where to import it from now
_MOVED = {
    "AdapterManifest": "finece_guard.adapters",
    "check_binding": "finece_guard.adapters",
    "Interval": "finece_guard.metrics",
    "accuracy": "finece_guard.metrics",
    "auroc": "finece_guard.metrics",
    "bootstrap": "finece_guard.metrics",
    "brier": "finece_guard.metrics",
    "ece": "finece_guard.metrics",
    "RunMonitor": "finece_guard.runtime.monitor",
    "ScoreScale": "finece_guard.prompts",
    "build_scorer_messages": "finece_guard.prompts",
    "ServeSpec": "finece_guard.backends",
    "VLLMServer": "finece_guard.backends",
    "integrate_paths": "finece_guard.runtime.bci",
    "look_ahead": "finece_guard.runtime.bci",
    "refine": "finece_guard.runtime.bci",
}
__getattr__, _ = lazy_exports(__name__, {}, _MOVED)
