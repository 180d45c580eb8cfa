"""Generator over an OpenAI-compatible server: token stream with logprobs, and continuations.

``astream`` yields one :class:`~finece_guard.types.TokenEvent` per streamed token with its
``top_logprobs`` (what the entropy checkpoint and the logprob baselines need). Breaking out of
the iteration closes the HTTP stream, which makes vLLM abort the request server-side.
``sample_continuations`` asks for ``n`` continuations of a partial answer in one request
(vLLM shares the cached prefix), for BCI look-ahead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from finece_guard import checks
from finece_guard.backends.http import OpenAIHTTP
from finece_guard.config import FromSettings, setting_default
from finece_guard.errors import BackendError
from finece_guard.redact import redact_text
from finece_guard.runtime.text import logprob_token_events
from finece_guard.types import TokenEvent

Message = dict[str, str]


@dataclass
class StreamStats:
    """Filled in while a stream runs: finish reason and server-side usage."""

    finish_reason: str | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    n_tokens: int = 0


def question_messages(question: str, system: str | None = None) -> list[Message]:
    """Default chat messages for answering ``question``."""
    msgs: list[Message] = []
    if system:
        msgs.append({"role": "system", "content": system})
    msgs.append({"role": "user", "content": question})
    return msgs


def _token_events(choice: dict[str, Any], start: int) -> list[TokenEvent]:
    delta_text = (choice.get("delta") or {}).get("content")
    return logprob_token_events(delta_text, (choice.get("logprobs") or {}).get("content"), start)


class OpenAICompatGenerator(FromSettings):
    """Streams answers of the generator model from an OpenAI-compatible server."""

    SETTINGS: ClassVar[Mapping[str, str]] = {
        "model": "generator_model",
        "api_key": "api_key",
        "top_logprobs": "generator_top_logprobs",
        "timeout_s": "generation_timeout_s",
        "connect_timeout_s": "connect_timeout_s",
        "retries": "retries",
        "max_concurrency": "max_concurrency",
        "priority": "generator_priority",
    }

    def __init__(
        self,
        base_url: str,
        *,
        model: str,
        api_key: str = setting_default("api_key"),
        top_logprobs: int = setting_default("generator_top_logprobs"),
        timeout_s: float = setting_default("generation_timeout_s"),
        connect_timeout_s: float = setting_default("connect_timeout_s"),
        retries: int = setting_default("retries"),
        max_concurrency: int = setting_default("max_concurrency"),
        priority: int = setting_default("generator_priority"),
    ) -> None:
        """``priority``: vLLM request priority (lower runs first; 0, vLLM's default, is not sent)."""
        checks.integer("top_logprobs", top_logprobs, low=0, high=20, example=5)
        self.http = OpenAIHTTP(
            base_url,
            api_key=api_key,
            timeout_s=timeout_s,
            connect_timeout_s=connect_timeout_s,
            retries=retries,
            max_concurrency=max_concurrency,
        )
        self.model = checks.text("model", model, example="smollm2-135m-instruct")
        self.top_logprobs = top_logprobs
        self.priority = checks.integer("priority", priority, low=-(2**31), example=0)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.http.safe_base_url!r}, model={self.model!r})"

    def _priority(self) -> dict[str, Any]:
        return {"priority": self.priority} if self.priority else {}

    async def astream(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        seed: int | None = None,
        stats: StreamStats | None = None,
        **extra: Any,
    ) -> AsyncIterator[TokenEvent]:
        """Yield the answer token by token, with logprobs."""
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": list(messages),
            "max_tokens": max_tokens,
            "temperature": temperature,
            "stream": True,
            "stream_options": {"include_usage": True},
            **self._priority(),
            **extra,
        }
        if self.top_logprobs:
            payload |= {"logprobs": True, "top_logprobs": self.top_logprobs}
        if seed is not None:
            payload["seed"] = seed
        index = 0
        async with self.http.stream_sse("/chat/completions", payload) as events:
            async for event in events:
                if event.get("usage") and stats is not None:
                    stats.usage = dict(event["usage"])
                for choice in event.get("choices") or ():
                    for tok in _token_events(choice, index):
                        index += 1
                        if stats is not None:
                            stats.n_tokens = index
                        yield tok
                    if choice.get("finish_reason") and stats is not None:
                        stats.finish_reason = str(choice["finish_reason"])

    async def sample_continuations(
        self,
        question: str,
        answer_prefix: str,
        *,
        n: int,
        max_tokens: int,
        temperature: float = 0.8,
        top_p: float = 0.95,
        seed: int | None = None,
    ) -> list[str]:
        """``n`` sampled continuations of ``answer_prefix`` (one request, shared cached prefix).

        An empty prefix samples ``n`` whole answers. The continuations do not repeat the prefix.
        """
        texts, _ = await self.sample_continuations_with_usage(
            question, answer_prefix, n=n, max_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed
        )
        return texts

    async def sample_continuations_with_usage(
        self,
        question: str,
        answer_prefix: str,
        *,
        n: int,
        max_tokens: int,
        temperature: float = 0.8,
        top_p: float = 0.95,
        seed: int | None = None,
    ) -> tuple[list[str], int]:
        """Like :meth:`sample_continuations`, plus the generated token count the server reported."""
        checks.integer("n", n, low=1, example=4)
        checks.integer("max_tokens", max_tokens, low=1, example=64)
        payload: dict[str, Any] = {
            "model": self.model,
            "n": n,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "top_p": top_p,
            **self._priority(),
        }
        if answer_prefix:
            payload["messages"] = [*question_messages(question), {"role": "assistant", "content": answer_prefix}]
            payload |= {"continue_final_message": True, "add_generation_prompt": False}
        else:
            payload["messages"] = question_messages(question)
        if seed is not None:
            payload["seed"] = seed
        body = await self.http.post_json("/chat/completions", payload)
        try:
            texts = [str(c["message"]["content"] or "") for c in body["choices"]]
            return texts, int((body.get("usage") or {}).get("completion_tokens") or 0)
        except (KeyError, TypeError) as exc:
            shown = redact_text(str(body)[:300], self.http.secrets)
            raise BackendError(f"unexpected continuation response: {shown}") from exc

    async def commit_choice(self, question: str, answer: str, letters: Sequence[str]) -> str:
        """One of ``letters``, greedy, continuing ``answer`` under a ``structured_outputs`` choice
        constraint (the second stage of :mod:`finece_guard.data.choice_commit`)."""
        if not letters:
            raise BackendError("commit_choice needs at least one option letter, e.g. ['A', 'B', 'C', 'D']")
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": [*question_messages(question), {"role": "assistant", "content": answer}],
            "continue_final_message": True,
            "add_generation_prompt": False,
            "max_tokens": 2,
            "temperature": 0.0,
            "structured_outputs": {"choice": list(letters)},
            **self._priority(),
        }
        body = await self.http.post_json("/chat/completions", payload)
        try:
            letter = str(body["choices"][0]["message"]["content"] or "").strip()
        except (KeyError, IndexError, TypeError) as exc:
            shown = redact_text(str(body)[:300], self.http.secrets)
            raise BackendError(f"unexpected choice response: {shown}") from exc
        if letter not in letters:
            raise BackendError(
                f"the server answered {letter!r} under a choice constraint of {list(letters)}: it ignores "
                "structured_outputs (vLLM >= 0.11 with a guided-decoding backend, e.g. xgrammar, is needed)"
            )
        return letter

    async def aclose(self) -> None:
        await self.http.aclose()
