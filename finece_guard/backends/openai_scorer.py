"""FineCE scorer over an OpenAI-compatible server (the vLLM-served LoRA adapter).

One request per state: the scorer prompt from :mod:`finece_guard.prompts`, the assistant turn
pre-filled with the score prefix (``continue_final_message``, a vLLM chat extension), one
output token at temperature 0 with ``top_logprobs``; the score is the expected value over the
score tokens' probabilities at that position. Prefix caching in vLLM makes re-scoring a growing
answer cheap (same question and instruction, longer answer). An optional ``recalibrator``
(e.g. the adapter's ``recalibration.json``, see
:func:`finece_guard.backends.recalibration.recalibrator_for_adapter`) maps each value; the raw
expected value stays in ``Score.raw_value``.

Before its first score (sync or async) the scorer checks, once, what it talks to
(:mod:`finece_guard.backends.served_models`): the adapter is served, is a LoRA of the generator,
and its manifest names that base model; a wrong setup raises a ConfigError /
AdapterMismatchError that says what to change. ``verify=False`` skips it. Scoring requests
carry a vLLM request ``priority`` (lower runs first; generation uses 0), so that a server
started with ``--scheduling-policy priority`` serves generation before scoring.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Mapping
from typing import Any, ClassVar

from finece_guard import checks
from finece_guard.backends.base import BaseScorer, ScoreMap, recalibrated
from finece_guard.backends.fusion import FusionModel
from finece_guard.backends.http import OpenAIHTTP
from finece_guard.backends.served_models import ScorerBinding, verify_scorer
from finece_guard.config import FromSettings, setting_default
from finece_guard.errors import BackendHTTPError, ConfigError, ScoreReadoutError
from finece_guard.prompts import DEFAULT_SCALE, ScoreScale, scorer_prompt
from finece_guard.redact import redact_text
from finece_guard.sync_bridge import run_sync
from finece_guard.types import CheckpointKind, Score


class OpenAICompatScorer(BaseScorer, FromSettings):
    """Scores states with the ``finece`` adapter served by vLLM (or any compatible server)."""

    SETTINGS: ClassVar[Mapping[str, str]] = {
        "model": "scorer_model",
        "api_key": "api_key",
        "top_logprobs": "top_logprobs",
        "min_mass": "min_score_mass",
        "timeout_s": "request_timeout_s",
        "connect_timeout_s": "connect_timeout_s",
        "retries": "retries",
        "max_concurrency": "max_concurrency",
        "verify": "verify_server",
        "generator_model": "generator_model",
        "verify_timeout_s": "verify_timeout_s",
        "priority": "scorer_priority",
        "strip_rater_text": "strip_rater_text",
    }

    def __init__(
        self,
        base_url: str,
        *,
        model: str = setting_default("scorer_model"),
        api_key: str = setting_default("api_key"),
        top_logprobs: int = setting_default("top_logprobs"),
        min_mass: float = setting_default("min_score_mass"),
        timeout_s: float = setting_default("request_timeout_s"),
        connect_timeout_s: float = setting_default("connect_timeout_s"),
        retries: int = setting_default("retries"),
        deadline_s: float | None = None,
        max_concurrency: int = setting_default("max_concurrency"),
        scale: ScoreScale = DEFAULT_SCALE,
        recalibrator: ScoreMap | None = None,
        verify: bool = setting_default("verify_server"),
        generator_model: str | None = None,
        verify_timeout_s: float = setting_default("verify_timeout_s"),
        priority: int | None = setting_default("scorer_priority"),
        fusion: FusionModel | None = None,
        strip_rater_text: bool = setting_default("strip_rater_text"),
    ) -> None:
        """``generator_model``: the served generator the adapter must be a LoRA of (None: any served
        base model). ``priority``: vLLM request priority of scoring requests (None: not sent).
        ``fusion``: a FineCE+ model (e.g. ``fusion_for_adapter(adapter_dir)``) that streamed callers
        apply at every checkpoint into ``Score.fused``. ``strip_rater_text``: remove text addressed
        to the rater from what is scored (:mod:`finece_guard.rating_filter`; the second line
        against forged confidence text, after the adapter's own training)."""
        self.http = OpenAIHTTP(
            base_url,
            api_key=api_key,
            timeout_s=timeout_s,
            connect_timeout_s=connect_timeout_s,
            retries=retries,
            deadline_s=deadline_s,
            max_concurrency=max_concurrency,
        )
        self.model = checks.text("model", model, example="finece")
        self.top_logprobs = checks.integer("top_logprobs", top_logprobs, low=1, high=20, example=20)
        self.min_mass = checks.probability("min_mass", min_mass, example=0.01)
        self.scale = scale
        self.max_concurrency = self.http.max_concurrency
        self.recalibrator = recalibrator
        if fusion is not None and not isinstance(fusion, FusionModel):
            raise ConfigError(f"fusion={fusion!r} must be a FusionModel, e.g. fusion=FusionModel.load(adapter_dir)")
        self.fusion = fusion
        if not isinstance(strip_rater_text, bool):
            raise ConfigError(f"strip_rater_text={strip_rater_text!r} must be True or False")
        self.strip_rater_text = strip_rater_text
        if not isinstance(verify, bool):
            raise ConfigError(f"verify={verify!r} must be True or False, e.g. verify=False to skip the /models check")
        self.verify = verify
        self.generator_model = (
            None if generator_model is None else checks.text("generator_model", generator_model, example="smollm2")
        )
        self.verify_timeout_s = checks.seconds("verify_timeout_s", verify_timeout_s, example=10.0)
        self.priority = None if priority is None else checks.integer("priority", priority, low=-(2**31), example=10)
        #: what the /models check found (None until it ran, or with verify=False)
        self.binding: ScorerBinding | None = None
        self._checks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task[ScorerBinding]] = (
            weakref.WeakKeyDictionary()
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.http.safe_base_url!r}, model={self.model!r})"

    async def averify(self) -> ScorerBinding | None:
        """Check, once, that the scorer model is a FineCE LoRA of the served generator (see module doc).

        Concurrent first callers share one check; a check that failed (server down, bad setup) is
        run again by the next caller. Returns None with ``verify=False``.
        """
        if not self.verify:
            return None
        if self.binding is not None:
            return self.binding
        loop = asyncio.get_running_loop()
        task = self._checks.get(loop)
        if task is None or (task.done() and (task.cancelled() or task.exception() is not None)):
            task = loop.create_task(
                verify_scorer(self.http, self.model, self.generator_model, timeout_s=self.verify_timeout_s)
            )
            # awaited through a shield, so a cancelled caller leaves it running: its failure is still
            # retrieved here (and reported to the next caller, who runs the check again)
            task.add_done_callback(lambda t: None if t.cancelled() else t.exception())
            self._checks[loop] = task
        binding = await asyncio.shield(task)
        self.binding = binding
        return binding

    def verify_server(self) -> ScorerBinding | None:
        """Sync wrapper of :meth:`averify` (not for use inside an event loop)."""
        return run_sync(self.averify())

    def payload(self, question: str, answer: str | None, kind: CheckpointKind) -> dict[str, Any]:
        """The chat-completions request body for one state."""
        return self._request(question, answer, kind)[0]

    def _request(
        self, question: str, answer: str | None, kind: CheckpointKind
    ) -> tuple[dict[str, Any], tuple[str, ...]]:
        """The request body for one state and the rater-text patterns removed from it."""
        prompt = scorer_prompt(question, answer, kind, strip_rater_text=self.strip_rater_text)
        body: dict[str, Any] = {
            "model": self.model,
            "messages": prompt.messages,
            "max_tokens": 1,
            "temperature": 0.0,
            "logprobs": True,
            "top_logprobs": self.top_logprobs,
            "continue_final_message": True,
            "add_generation_prompt": False,
        }
        if self.priority is not None:
            body["priority"] = self.priority
        return body, prompt.rater_text

    def read(self, body: dict[str, Any]) -> Score:
        """Score from a chat-completions response body."""
        try:
            content = body["choices"][0]["logprobs"]["content"]
            top = content[0]["top_logprobs"]
            pairs = [(str(t["token"]), float(t["logprob"])) for t in top]
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            shown = redact_text(str(body)[:300], self.http.secrets)
            raise ScoreReadoutError(f"response has no top_logprobs for the score position: {shown}") from exc
        return self.scale.read(pairs, min_mass=self.min_mass)

    async def ascore(self, question: str, answer: str | None, kind: CheckpointKind) -> Score:
        t0 = time.perf_counter()
        payload, rater_text = self._request(question, answer, kind)  # bad input fails before any network call
        await self.averify()
        try:
            body = await self.http.post_json("/chat/completions", payload)
        except BackendHTTPError as exc:
            # a server that refuses request priorities (vLLM docs: non-zero priority without
            # --scheduling-policy priority may be an error): score without one from now on
            if exc.status_code != 400 or "priority" not in exc.body or "priority" not in payload:
                raise
            self.priority = None
            payload.pop("priority")
            body = await self.http.post_json("/chat/completions", payload)
        score = self.read(body)
        raw = Score(
            value=score.value,
            spread=score.spread,
            mass=score.mass,
            distribution=score.distribution,
            latency_s=time.perf_counter() - t0,
            rater_text=rater_text,
        )
        return recalibrated(raw, self.recalibrator)

    async def aclose(self) -> None:
        await self.http.aclose()
