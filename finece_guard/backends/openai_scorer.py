"""FineCE scorer over an OpenAI-compatible server (the vLLM-served LoRA adapter).

One request per state: the scorer prompt from :mod:`finece_guard.prompts`, the assistant turn
pre-filled with the score prefix (``continue_final_message``, a vLLM chat extension), one
output token at temperature 0 with ``top_logprobs``; the score is the expected value over the
score tokens' probabilities at that position. Prefix caching in vLLM makes re-scoring a growing
answer cheap (same question and instruction, longer answer). An optional ``recalibrator``
(e.g. the adapter's ``recalibration.json``, see
:func:`finece_guard.evaluation.recalibration.recalibrator_for_adapter`) maps each value; the raw
expected value stays in ``Score.raw_value``.
"""

from __future__ import annotations

import time
from typing import Any

from finece_guard.backends.base import BaseScorer, ScoreMap, recalibrated
from finece_guard.backends.http import OpenAIHTTP
from finece_guard.config import FineCESettings
from finece_guard.errors import ConfigError, ScoreReadoutError
from finece_guard.prompts import DEFAULT_SCALE, ScoreScale, build_scorer_messages
from finece_guard.types import CheckpointKind, Score


class OpenAICompatScorer(BaseScorer):
    """Scores states with the ``finece`` adapter served by vLLM (or any compatible server)."""

    def __init__(
        self,
        base_url: str,
        *,
        model: str = "finece",
        api_key: str = "EMPTY",
        top_logprobs: int = 20,
        min_mass: float = 0.01,
        timeout_s: float = 60.0,
        connect_timeout_s: float = 5.0,
        retries: int = 3,
        deadline_s: float | None = None,
        max_concurrency: int = 8,
        scale: ScoreScale = DEFAULT_SCALE,
        recalibrator: ScoreMap | None = None,
    ) -> None:
        self.http = OpenAIHTTP(
            base_url,
            api_key=api_key,
            timeout_s=timeout_s,
            connect_timeout_s=connect_timeout_s,
            retries=retries,
            deadline_s=deadline_s,
            max_concurrency=max_concurrency,
        )
        self.model = model
        self.top_logprobs = top_logprobs
        self.min_mass = min_mass
        self.scale = scale
        self.max_concurrency = max_concurrency
        self.recalibrator = recalibrator

    @classmethod
    def from_settings(
        cls, settings: FineCESettings, base_url: str | None = None, *, recalibrator: ScoreMap | None = None
    ) -> OpenAICompatScorer:
        url = base_url or settings.base_url
        if url is None:
            raise ConfigError("no server URL: pass base_url or set FINECE_BASE_URL (e.g. http://127.0.0.1:8011/v1)")
        return cls(
            url,
            model=settings.scorer_model,
            api_key=settings.api_key,
            top_logprobs=settings.top_logprobs,
            min_mass=settings.min_score_mass,
            timeout_s=settings.request_timeout_s,
            connect_timeout_s=settings.connect_timeout_s,
            retries=settings.retries,
            max_concurrency=settings.max_concurrency,
            recalibrator=recalibrator,
        )

    def payload(self, question: str, answer: str | None, kind: CheckpointKind) -> dict[str, Any]:
        """The chat-completions request body for one state."""
        return {
            "model": self.model,
            "messages": build_scorer_messages(question, answer, kind),
            "max_tokens": 1,
            "temperature": 0.0,
            "logprobs": True,
            "top_logprobs": self.top_logprobs,
            "continue_final_message": True,
            "add_generation_prompt": False,
        }

    def read(self, body: dict[str, Any]) -> Score:
        """Score from a chat-completions response body."""
        try:
            content = body["choices"][0]["logprobs"]["content"]
            top = content[0]["top_logprobs"]
            pairs = [(str(t["token"]), float(t["logprob"])) for t in top]
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise ScoreReadoutError(f"response has no top_logprobs for the score position: {str(body)[:300]}") from exc
        return self.scale.read(pairs, min_mass=self.min_mass)

    async def ascore(self, question: str, answer: str | None, kind: CheckpointKind) -> Score:
        t0 = time.perf_counter()
        body = await self.http.post_json("/chat/completions", self.payload(question, answer, kind))
        score = self.read(body)
        raw = Score(
            value=score.value,
            spread=score.spread,
            mass=score.mass,
            distribution=score.distribution,
            latency_s=time.perf_counter() - t0,
        )
        return recalibrated(raw, self.recalibrator)

    async def aclose(self) -> None:
        await self.http.aclose()
