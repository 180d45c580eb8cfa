"""What the evaluation harness asks of the generator, and the served implementation.

Besides streaming the greedy answer and sampling continuations (look-ahead, self-consistency),
the prompted baselines need two one-shot calls: the top alternatives of one next token (P(True))
and a short greedy reply (verbalized confidence). :class:`ServedEvalGenerator` adds them to the
OpenAI-compatible generator.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol

from finece_guard.backends.openai_generator import Message, OpenAICompatGenerator, StreamStats
from finece_guard.data.construction import MonteCarloSampler
from finece_guard.errors import BackendError
from finece_guard.types import TokenEvent


class EvalGenerator(MonteCarloSampler, Protocol):
    """What the harness needs from the generator (implemented by :class:`ServedEvalGenerator`): the
    sampler of data construction (look-ahead and self-consistency samples) plus the calls below."""

    def astream(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        seed: int | None = None,
        stats: StreamStats | None = None,
    ) -> AsyncIterator[TokenEvent]: ...

    async def next_token_logprobs(self, messages: Sequence[Message], *, top_logprobs: int) -> list[tuple[str, float]]:
        """Top alternatives of the one token that continues the last (assistant) message, greedy."""
        ...

    async def complete(self, messages: Sequence[Message], *, max_tokens: int) -> str:
        """A greedy chat reply; a last ``assistant`` message is continued (the reply excludes it)."""
        ...

    async def commit_choice(self, question: str, answer: str, letters: Sequence[str]) -> str:
        """One of ``letters`` continuing ``answer`` (:mod:`finece_guard.data.choice_commit`)."""
        ...


class ServedEvalGenerator(OpenAICompatGenerator):
    """The OpenAI-compatible generator plus the two one-shot calls the prompted baselines need."""

    async def next_token_logprobs(self, messages: Sequence[Message], *, top_logprobs: int) -> list[tuple[str, float]]:
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": list(messages),
            "max_tokens": 1,
            "temperature": 0.0,
            "logprobs": True,
            "top_logprobs": top_logprobs,
            "continue_final_message": True,
            "add_generation_prompt": False,
        }
        body = await self.http.post_json("/chat/completions", payload)
        try:
            top = body["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
            return [(str(t["token"]), float(t["logprob"])) for t in top]
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise BackendError(f"no top_logprobs in the generator's response: {str(body)[:300]}") from exc

    async def complete(self, messages: Sequence[Message], *, max_tokens: int) -> str:
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": list(messages),
            "max_tokens": max_tokens,
            "temperature": 0.0,
        }
        if messages and messages[-1]["role"] == "assistant":
            payload |= {"continue_final_message": True, "add_generation_prompt": False}
        body = await self.http.post_json("/chat/completions", payload)
        try:
            return str(body["choices"][0]["message"]["content"] or "")
        except (KeyError, IndexError, TypeError) as exc:
            raise BackendError(f"unexpected chat response from the generator: {str(body)[:300]}") from exc


class SeededSampler:
    """Look-ahead sampler with a fixed per-question seed (reproducible continuations)."""

    def __init__(self, generator: EvalGenerator, seed: int) -> None:
        self.generator = generator
        self.seed = seed

    async def sample_continuations(self, question: str, answer_prefix: str, *, n: int, max_tokens: int) -> list[str]:
        return await self.generator.sample_continuations(
            question, answer_prefix, n=n, max_tokens=max_tokens, seed=self.seed
        )
