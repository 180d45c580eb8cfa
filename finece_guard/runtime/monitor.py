"""Per-run confidence monitoring: feed tokens, score checkpoints beside the stream, build a trace.

:class:`RunMonitor` holds the state of **one** run (tokens, checkpoints, pending scoring tasks),
so callers that serve many runs keep one monitor per run id and never share state on ``self``.
Scoring is scheduled as tasks that run beside generation: the token stream never waits for a
score (the question-only state is sent with the first token, so it never delays the first token).
Each finished score is handed to ``on_scored`` (the callback handler's decider) on the
loop; :meth:`RunMonitor.finish` scores the final answer, waits for pending scores up to a
deadline (what is late is recorded as an error, never silently dropped) and applies
retrospective BCI.

Scoring under load: scores are worth less than generation. A run has at most one partial
checkpoint in flight, and all runs that share a :class:`PartialScoreLimit` (one per callback
handler, i.e. per guard) have at most ``limit`` partial scores in flight together; a partial
checkpoint that cannot be sent waits in a one-place slot, and a still newer one supersedes it
(recorded in ``trace.meta["skipped"]`` with the reason). The question-only and final states are
never held back by either limit and always scored (unless the deadline passes). Any exception a
scorer raises is a scoring failure of that checkpoint, never an escape.

:func:`stream_with_confidence` is the plain-async front end used by ``finece-guard ask``: it
yields tokens and scored checkpoints as they happen, then the finished :class:`Trace`.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from finece_guard.backends.base import BaseScorer
from finece_guard.config import setting_default
from finece_guard.errors import ConfigError
from finece_guard.runtime.bci import refine
from finece_guard.runtime.checkpoints import CheckpointStrategy, ParagraphEnd
from finece_guard.types import Checkpoint, CheckpointKind, Score, ScoredCheckpoint, TokenEvent, Trace

#: The reason of a question-only checkpoint scored before generation (a guarded session's pre-score,
#: and an attempt's question checkpoint that records that same score instead of asking again).
PRESCORED_QUESTION = "question only, before generation"

_ALPHA = setting_default("bci_alpha")
_WINDOW = setting_default("bci_window")
_DEADLINE_S = setting_default("score_deadline_s")


class PartialScoreLimit:
    """At most ``limit`` partial-checkpoint scores in flight across the runs that share it (thread-safe).

    Under load the scorer's prefill competes with generation on the same server; capping partial
    scores sheds the least valuable scoring work first (a run's newest checkpoint waits, older ones
    are superseded), while question-only and final scores are never capped.
    """

    def __init__(self, limit: int) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigError(f"max_partial_scores={limit!r} must be an integer >= 1 (e.g. 4)")
        self.limit = limit
        self._in_flight = 0
        self._lock = threading.Lock()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def try_acquire(self) -> bool:
        with self._lock:
            if self._in_flight >= self.limit:
                return False
            self._in_flight += 1
            return True

    def release(self) -> None:
        with self._lock:
            self._in_flight = max(0, self._in_flight - 1)


@dataclass(frozen=True)
class _Held:
    """A partial checkpoint the strategy asked for while another partial score was in flight."""

    n_tokens: int
    answer_prefix: str
    reason: str


class RunMonitor:
    """State of one monitored answer."""

    def __init__(
        self,
        question: str,
        scorer: BaseScorer,
        strategy: CheckpointStrategy | None = None,
        *,
        alpha: float = _ALPHA,
        window: int = _WINDOW,
        score_question: bool = True,
        deadline_s: float = _DEADLINE_S,
        on_scored: Callable[[ScoredCheckpoint], None] | None = None,
        partial_limit: PartialScoreLimit | None = None,
        question_score: Score | None = None,
    ) -> None:
        self.question = question
        #: the question-only state's score when it was already asked for (a guarded session's
        #: pre-score before generation): recorded as this run's question checkpoint, not asked again
        self.question_score = question_score
        self.scorer = scorer
        self.strategy = strategy or ParagraphEnd()
        self.alpha = alpha
        self.window = window
        self.deadline_s = deadline_s
        self.on_scored = on_scored
        self.partial_limit = partial_limit
        self.tokens: list[TokenEvent] = []
        self.checkpoints: list[Checkpoint] = []
        self.skipped: list[dict[str, Any]] = []
        self._tasks: list[asyncio.Task[ScoredCheckpoint]] = []
        self._done: asyncio.Queue[ScoredCheckpoint] = asyncio.Queue()
        self._last_cp_token = 0
        self._partial_in_flight = False
        self._held: _Held | None = None
        self._closed = False
        # the question-only state is scored when the first token arrives (or at the end, if none
        # does), not at the start: its request would otherwise compete with the generator's prefill
        # and delay the first token
        self._question_pending = score_question

    @property
    def text(self) -> str:
        return "".join(t.text for t in self.tokens)

    @property
    def pending(self) -> int:
        """Scoring tasks not finished yet."""
        return sum(not t.done() for t in self._tasks)

    def _schedule(
        self, kind: CheckpointKind, reason: str, n_tokens: int, prefix: str, *, holds_slot: bool = False
    ) -> Checkpoint:
        """Start scoring a checkpoint; ``holds_slot``: it took a shared partial slot (freed when it ends)."""
        cp = Checkpoint(len(self.checkpoints), kind, n_tokens, prefix, reason)
        self.checkpoints.append(cp)
        if kind is CheckpointKind.PARTIAL:
            self._partial_in_flight = True
        release = self._slot_release() if holds_slot else None
        task = asyncio.get_running_loop().create_task(self._score(cp, release))
        if release is not None:
            task.add_done_callback(lambda _: release())  # also when cancelled before it ran
        self._tasks.append(task)
        return cp

    def _slot_release(self) -> Callable[[], None] | None:
        """A one-shot release of the shared slot just taken (the score's end and its task's end both call it)."""
        limit = self.partial_limit
        if limit is None:
            return None
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                limit.release()

        return release

    async def _score(self, cp: Checkpoint, release: Callable[[], None] | None = None) -> ScoredCheckpoint:
        answer = None if cp.kind is CheckpointKind.QUESTION else cp.answer_prefix
        try:
            if cp.kind is CheckpointKind.QUESTION and self.question_score is not None:
                score = self.question_score
            else:
                score = await self.scorer.ascore(self.question, answer, cp.kind)
            if self.scorer.fusion is not None:  # the prefix copy is only made for a fusion model
                score = self.scorer.with_fusion(score, self.tokens[: cp.n_tokens], cp.kind)
            result = ScoredCheckpoint(cp, score)
        except Exception as exc:  # any scorer failure is this checkpoint's scoring failure
            result = ScoredCheckpoint(cp, None, f"{type(exc).__name__}: {exc}")
        finally:
            if cp.kind is CheckpointKind.PARTIAL:
                self._partial_in_flight = False
                if release is not None:
                    release()  # first, so that this run's held checkpoint can take the slot just freed
                self._release_held()
        self._done.put_nowait(result)
        if self.on_scored is not None:
            self.on_scored(result)
        return result

    def _may_send_partial(self) -> bool:
        """True (and a shared slot taken) when a partial score may be sent now."""
        if self._partial_in_flight:
            return False
        return self.partial_limit is None or self.partial_limit.try_acquire()

    def _release_held(self) -> None:
        if self._held is None or self._closed or not self._may_send_partial():
            return  # no slot now: the held checkpoint waits for the run's next token
        held, self._held = self._held, None
        self._schedule(CheckpointKind.PARTIAL, held.reason, held.n_tokens, held.answer_prefix, holds_slot=True)

    def _score_question(self) -> None:
        if self._question_pending:
            self._question_pending = False
            reason = "question only" if self.question_score is None else PRESCORED_QUESTION
            self._schedule(CheckpointKind.QUESTION, reason, 0, "")

    def feed(self, event: TokenEvent) -> Checkpoint | None:
        """Record a token; schedule (or hold) a partial checkpoint if the strategy says so."""
        self._score_question()
        self.tokens.append(event)
        if self._held is not None and not self._partial_in_flight:
            self._release_held()  # a checkpoint held for a shared slot goes as soon as one is free
        reason = self.strategy.reason(self.tokens, len(self.tokens) - self._last_cp_token)
        if not reason or self._closed:
            return None
        self._last_cp_token = len(self.tokens)
        if not self._may_send_partial():
            if self._held is not None:
                why = (
                    "its run's previous partial score was still in flight"
                    if self._partial_in_flight
                    else f"{self.partial_limit.limit if self.partial_limit else 0} partial scores were in flight "
                    "across runs"
                )
                self._skip(self._held, f"superseded by the checkpoint at {len(self.tokens)} tokens ({why})")
            self._held = _Held(len(self.tokens), self.text, reason)
            return None
        return self._schedule(CheckpointKind.PARTIAL, reason, len(self.tokens), self.text, holds_slot=True)

    def _skip(self, held: _Held, why: str) -> None:
        self.skipped.append({"n_tokens": held.n_tokens, "reason": held.reason, "skipped": why})

    def scored_now(self) -> list[ScoredCheckpoint]:
        """Scores that completed since the last call (non-blocking)."""
        out: list[ScoredCheckpoint] = []
        while not self._done.empty():
            out.append(self._done.get_nowait())
        return out

    async def cancel(self) -> None:
        """Cancel every pending score (their HTTP requests close) and wait until they are gone."""
        self._closed = True
        self._question_pending = False
        if self._held is not None:
            self._skip(self._held, "the run was cancelled")
            self._held = None
        pending = [t for t in self._tasks if not t.done()]
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await asyncio.sleep(0)  # let the tasks' done callbacks give shared partial slots back

    async def finish(
        self, *, finished: bool = True, finish_reason: str | None = None, score_last: bool = True
    ) -> Trace:
        """Score the final state, wait for pending scores (bounded) and return the refined trace.

        ``score_last=False`` (a run stopped by a decision) records the text but does not score
        the stopped state: the decision's own checkpoint is the last one that matters.
        """
        self._score_question()
        if self._held is not None:
            self._skip(self._held, "superseded by the end of the answer")
            self._held = None
        self._closed = True
        if (
            self.tokens
            and self._last_cp_token == len(self.tokens)
            and self.checkpoints
            and self.checkpoints[-1].kind is CheckpointKind.PARTIAL
            and self.checkpoints[-1].n_tokens == len(self.tokens)
            and score_last
        ):
            # the last token closed a partial checkpoint: that state *is* the final answer
            self.checkpoints.pop()
            task = self._tasks.pop()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.tokens and score_last:
            kind = CheckpointKind.FINAL if finished else CheckpointKind.PARTIAL
            self._schedule(kind, "final answer" if finished else "stopped", len(self.tokens), self.text)
        done, pending = await asyncio.wait(self._tasks, timeout=self.deadline_s) if self._tasks else (set(), set())
        results: list[ScoredCheckpoint] = []
        for cp, task in zip(self.checkpoints, self._tasks, strict=True):
            if task in done and not task.cancelled():
                results.append(task.result())
            else:
                task.cancel()
                results.append(ScoredCheckpoint(cp, None, f"not scored within the {self.deadline_s} s deadline"))
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await asyncio.sleep(0)  # let the tasks' done callbacks give shared partial slots back
        raw = [r.score.value if r.score else None for r in results]
        refined = refine(raw, alpha=self.alpha, window=self.window)
        meta: dict[str, Any] = {"strategy": self.strategy.name, "alpha": self.alpha, "window": self.window}
        if self.skipped:
            meta["skipped"] = list(self.skipped)
        return Trace(
            question=self.question,
            answer=self.text,
            checkpoints=tuple(results),
            refined=tuple(refined),
            n_tokens=len(self.tokens),
            finished=finished,
            finish_reason=finish_reason,
            meta=meta,
        )


async def stream_with_confidence(
    question: str,
    *,
    generator: Any,
    scorer: BaseScorer,
    strategy: CheckpointStrategy | None = None,
    messages: Sequence[dict[str, str]] | None = None,
    max_tokens: int = 256,
    temperature: float = 0.0,
    alpha: float = _ALPHA,
    window: int = _WINDOW,
    deadline_s: float = _DEADLINE_S,
) -> AsyncIterator[TokenEvent | ScoredCheckpoint | Trace]:
    """Stream an answer from an :class:`~finece_guard.OpenAICompatGenerator`, yielding tokens and
    scored checkpoints as they happen, then the Trace."""
    from finece_guard.backends.openai_generator import StreamStats, question_messages

    monitor = RunMonitor(question, scorer, strategy, alpha=alpha, window=window, deadline_s=deadline_s)
    stats = StreamStats()
    msgs = list(messages) if messages is not None else question_messages(question)
    try:
        async for event in generator.astream(msgs, max_tokens=max_tokens, temperature=temperature, stats=stats):
            monitor.feed(event)
            yield event
            for sc in monitor.scored_now():
                yield sc
        finished = stats.finish_reason == "stop"
        trace = await monitor.finish(finished=finished, finish_reason=stats.finish_reason)
    finally:
        await monitor.cancel()
    for sc in monitor.scored_now():
        yield sc
    yield trace
