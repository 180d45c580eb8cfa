"""One exception tree for the whole library.

Every lower-level error (httpx, subprocess, OS, JSON) is mapped to the most specific
class here with ``raise X(...) from exc``, so callers catch ``FineCEError`` (or a branch
of it) and never a transport library's type. Messages say what to do next.

::

    FineCEError
    ├── ConfigError (also ValueError)      bad argument or setting; says how to fix it
    ├── SetupError                         a prerequisite is missing (venv, wheel, model)
    ├── AdapterMismatchError               adapter trained for another base model
    ├── ServerError
    │   ├── ServerStartError               vLLM did not come up (log tail attached)
    │   └── PortInUseError                 the requested port is taken
    ├── BackendError                       talking to a scorer/generator failed
    │   ├── BackendConnectionError         cannot connect (server down?)
    │   ├── BackendTimeoutError            no answer within the configured timeout
    │   ├── BackendHTTPError               HTTP status >= 400 (status and body kept)
    │   └── ScoreReadoutError              response carried no usable score token
    ├── MetricError (also ValueError)      empty, mismatched or single-class inputs
    └── GenerationAborted                  a policy stopped a streaming generation (carries
                                           the decision and the run id; the trace is kept)
"""

from __future__ import annotations

from typing import Any

from finece_guard.redact import redact_text, redact_url


class FineCEError(Exception):
    """Base class of every error raised by finece_guard."""


class ConfigError(FineCEError, ValueError):
    """A setting or argument is invalid; the message says how to fix it."""


class SetupError(FineCEError):
    """A prerequisite (virtualenv, local wheel, model files) is missing."""


class AdapterMismatchError(FineCEError):
    """A FineCE adapter's manifest names a different base model than the one served."""


class ServerError(FineCEError):
    """The vLLM server could not be started or stopped."""


class ServerStartError(ServerError):
    """The vLLM server exited or did not become healthy in time."""

    def __init__(self, message: str, *, log_tail: str = "") -> None:
        super().__init__(message + (f"\n--- last server output ---\n{log_tail}" if log_tail else ""))
        self.log_tail = log_tail


class PortInUseError(ServerError):
    """The requested host:port is already bound by another process."""


class BackendError(FineCEError):
    """Talking to a scoring or generation backend failed."""


class BackendConnectionError(BackendError):
    """The backend could not be reached (connection refused, DNS, reset)."""


class BackendTimeoutError(BackendError):
    """The backend did not answer within the configured timeout."""


class BackendHTTPError(BackendError):
    """The backend answered with an HTTP error status (URL and body kept, credentials redacted)."""

    def __init__(self, status_code: int, body: str, url: str) -> None:
        url, body = redact_url(url), redact_text(body)
        super().__init__(f"HTTP {status_code} from {url}: {body[:500]}")
        self.status_code = status_code
        self.body = body
        self.url = url

    @property
    def retryable(self) -> bool:
        """True for statuses worth retrying (overload, gateway trouble)."""
        return self.status_code in (408, 429, 500, 502, 503, 504)


class ScoreReadoutError(BackendError):
    """The scorer's response had no (or too little) probability on score tokens."""


class MetricError(FineCEError, ValueError):
    """Metric inputs are empty, of different lengths, or single-class where two are needed."""


class GenerationAborted(FineCEError):
    """A policy aborted a streaming generation.

    Raised from the callback handler's token callback (``raise_error=True``) so that LangChain
    propagates it and closes the stream, which cancels the request in vLLM. ``decision`` is the
    policy's :class:`~finece_guard.runtime.policies.Decision`; the run's trace is kept by the handler.
    """

    def __init__(self, decision: Any, run_id: Any = None) -> None:
        super().__init__(f"generation aborted by {getattr(decision, 'policy', '?')}: {getattr(decision, 'reason', '')}")
        self.decision = decision
        self.run_id = run_id
