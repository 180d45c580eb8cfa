"""Per-run confidence monitoring: feed tokens, score checkpoints beside the stream, build a trace.

:class:`RunMonitor` holds the state of **one** run (tokens, checkpoints, pending scoring tasks),
so callers that serve many runs keep one monitor per run id and never share state on ``self``.
Scoring is scheduled as tasks that run beside generation: the token stream never waits for a
score. :meth:`RunMonitor.finish` scores the final answer, waits for pending scores up to a
deadline (what is late is recorded as an error, never silently dropped) and applies
retrospective BCI.

:func:`stream_with_confidence` is the plain-async front end used by ``finece-guard ask``: it
yields tokens and scored checkpoints as they happen, then the finished :class:`Trace`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

from finece_guard.backends.base import BaseScorer
from finece_guard.backends.openai_generator import Message, OpenAICompatGenerator, StreamStats, question_messages
from finece_guard.bci import refine
from finece_guard.checkpoints import CheckpointStrategy, ParagraphEnd
from finece_guard.errors import FineCEError
from finece_guard.types import Checkpoint, CheckpointKind, ScoredCheckpoint, TokenEvent, Trace


class RunMonitor:
    """State of one monitored answer."""

    def __init__(
        self,
        question: str,
        scorer: BaseScorer,
        strategy: CheckpointStrategy | None = None,
        *,
        alpha: float = 0.5,
        window: int = 2,
        score_question: bool = True,
        deadline_s: float = 60.0,
    ) -> None:
        self.question = question
        self.scorer = scorer
        self.strategy = strategy or ParagraphEnd()
        self.alpha = alpha
        self.window = window
        self.deadline_s = deadline_s
        self.tokens: list[TokenEvent] = []
        self.checkpoints: list[Checkpoint] = []
        self._tasks: list[asyncio.Task[ScoredCheckpoint]] = []
        self._done: asyncio.Queue[ScoredCheckpoint] = asyncio.Queue()
        self._last_cp_token = 0
        if score_question:
            self._schedule(CheckpointKind.QUESTION, "question only")

    @property
    def text(self) -> str:
        return "".join(t.text for t in self.tokens)

    def _schedule(self, kind: CheckpointKind, reason: str) -> Checkpoint:
        cp = Checkpoint(
            position=len(self.checkpoints),
            kind=kind,
            n_tokens=len(self.tokens),
            answer_prefix=self.text,
            reason=reason,
        )
        self.checkpoints.append(cp)
        self._last_cp_token = len(self.tokens)
        self._tasks.append(asyncio.create_task(self._score(cp)))
        return cp

    async def _score(self, cp: Checkpoint) -> ScoredCheckpoint:
        answer = None if cp.kind is CheckpointKind.QUESTION else cp.answer_prefix
        try:
            score = await self.scorer.ascore(self.question, answer, cp.kind)
            result = ScoredCheckpoint(cp, score)
        except FineCEError as exc:
            result = ScoredCheckpoint(cp, None, f"{type(exc).__name__}: {exc}")
        self._done.put_nowait(result)
        return result

    def feed(self, event: TokenEvent) -> Checkpoint | None:
        """Record a token; schedule a partial checkpoint if the strategy says so."""
        self.tokens.append(event)
        reason = self.strategy.reason(self.tokens, len(self.tokens) - self._last_cp_token)
        return self._schedule(CheckpointKind.PARTIAL, reason) if reason else None

    def scored_now(self) -> list[ScoredCheckpoint]:
        """Scores that completed since the last call (non-blocking)."""
        out: list[ScoredCheckpoint] = []
        while not self._done.empty():
            out.append(self._done.get_nowait())
        return out

    async def finish(self, *, finished: bool = True, finish_reason: str | None = None) -> Trace:
        """Score the final state, wait for pending scores (bounded) and return the refined trace."""
        if (
            self.tokens
            and self._last_cp_token == len(self.tokens)
            and self.checkpoints[-1].kind is CheckpointKind.PARTIAL
        ):
            # the last token closed a partial checkpoint: that state *is* the final answer
            last = self.checkpoints.pop()
            task = self._tasks.pop()
            task.cancel()
            self._last_cp_token = last.n_tokens - 1
        if self.tokens:
            self._schedule(
                CheckpointKind.FINAL if finished else CheckpointKind.PARTIAL, "final answer" if finished else "stopped"
            )
        done, pending = await asyncio.wait(self._tasks, timeout=self.deadline_s) if self._tasks else (set(), set())
        results: list[ScoredCheckpoint] = []
        for cp, task in zip(self.checkpoints, self._tasks, strict=True):
            if task in done and not task.cancelled():
                results.append(task.result())
            else:
                task.cancel()
                results.append(ScoredCheckpoint(cp, None, f"not scored within the {self.deadline_s} s deadline"))
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        raw = [r.score.value if r.score else None for r in results]
        refined = refine(raw, alpha=self.alpha, window=self.window)
        return Trace(
            question=self.question,
            answer=self.text,
            checkpoints=tuple(results),
            refined=tuple(refined),
            n_tokens=len(self.tokens),
            finished=finished,
            finish_reason=finish_reason,
            meta={"strategy": self.strategy.name, "alpha": self.alpha, "window": self.window},
        )


async def stream_with_confidence(
    question: str,
    *,
    generator: OpenAICompatGenerator,
    scorer: BaseScorer,
    strategy: CheckpointStrategy | None = None,
    messages: Sequence[Message] | None = None,
    max_tokens: int = 256,
    temperature: float = 0.0,
    alpha: float = 0.5,
    window: int = 2,
    deadline_s: float = 60.0,
) -> AsyncIterator[TokenEvent | ScoredCheckpoint | Trace]:
    """Stream an answer, yielding tokens and scored checkpoints as they happen, then the Trace."""
    monitor = RunMonitor(question, scorer, strategy, alpha=alpha, window=window, deadline_s=deadline_s)
    stats = StreamStats()
    msgs = list(messages) if messages is not None else question_messages(question)
    async for event in generator.astream(msgs, max_tokens=max_tokens, temperature=temperature, stats=stats):
        monitor.feed(event)
        yield event
        for sc in monitor.scored_now():
            yield sc
    finished = stats.finish_reason == "stop"
    trace = await monitor.finish(finished=finished, finish_reason=stats.finish_reason)
    for sc in monitor.scored_now():
        yield sc
    yield trace
