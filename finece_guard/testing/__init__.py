"""Fakes for tests, shipped with the library (as langchain-core ships its fake chat models).

:class:`EchoChatModel` is a streaming chat model that echoes a rule's reply, for tests of the
guard in every mode. :class:`KeywordScorer` is a deterministic :class:`~finece_guard.backends.base.BaseScorer` for
unit tests of code that *uses* a scorer (policies, the guard, the callback handler): it never
stands in for the real FineCE scorer in a test that claims to test scoring.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import Field

from finece_guard.backends.base import BaseScorer
from finece_guard.errors import ScoreReadoutError
from finece_guard.types import CheckpointKind, Score


class KeywordScorer(BaseScorer):
    """Scores by a rule on the text: ``rule(question, answer, kind) -> value`` (or raise).

    ``delay_s`` simulates scorer latency; ``calls`` records every request.
    """

    def __init__(
        self, rule: Callable[[str, str | None, CheckpointKind], float], *, delay_s: float = 0.0
    ) -> None:
        self.rule = rule
        self.delay_s = delay_s
        self.calls: list[tuple[str, str | None, CheckpointKind]] = []

    async def ascore(self, question: str, answer: str | None, kind: CheckpointKind) -> Score:
        self.calls.append((question, answer, kind))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        value = self.rule(question, answer, kind)
        if value < 0:
            raise ScoreReadoutError("KeywordScorer rule returned no score")
        return Score(value=value, spread=0.0, mass=1.0)


class EchoChatModel(BaseChatModel):
    """A chat model for unit tests: streams ``reply(prompt, kwargs)`` word by word, sync and async.

    ``prompts`` and ``seen`` record each call's last message and sampling kwargs; ``delay_s`` is the
    pause per streamed piece; ``streaming`` is the field ChatOpenAI has too (the agent middleware
    turns streaming on through it); ``logprob``: each streamed piece carries this chosen-token
    logprob in its ``generation_info`` the way ChatOpenAI's do (None: no logprobs).
    """

    reply: Callable[[str, dict[str, Any]], str]
    delay_s: float = 0.0005
    logprob: float | None = None
    streaming: bool = False
    seen: list[dict[str, Any]] = Field(default_factory=list)
    prompts: list[str] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "echo"

    def _text(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> str:
        prompt = str(messages[-1].content)
        self.seen.append(dict(kwargs))
        self.prompts.append(prompt)
        return self.reply(prompt, kwargs)

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=AIMessage(self._text(messages, kw)))])

    def _chunk(self, tok: str) -> ChatGenerationChunk:
        if self.logprob is None:
            return ChatGenerationChunk(message=AIMessageChunk(content=tok))
        logprobs = {"content": [{"token": tok, "logprob": self.logprob, "top_logprobs": []}]}
        return ChatGenerationChunk(message=AIMessageChunk(content=tok), generation_info={"logprobs": logprobs})

    def _stream(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> Iterator[ChatGenerationChunk]:
        for tok in re.split(r"(\s)", self._text(messages, kw)):
            if tok:
                time.sleep(self.delay_s)
                yield self._chunk(tok)

    async def _astream(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> AsyncIterator[ChatGenerationChunk]:
        for tok in re.split(r"(\s)", self._text(messages, kw)):
            if tok:
                await asyncio.sleep(self.delay_s)
                yield self._chunk(tok)
