"""The LangChain callback handler: FineCE scoring beside any streaming chat model; carries out in-stream decisions.

Attach :class:`FineCECallbackHandler` to a chat model that streams from an OpenAI-compatible
endpoint with logprobs (``ChatOpenAI(base_url=..., logprobs=True, top_logprobs=5)``) or to any
chain containing one. For each model run it keeps a :class:`~finece_guard.runtime.monitor.RunMonitor`
keyed by the run's ``run_id`` (one handler serves any number of concurrent runs without
cross-talk), feeds it every streamed token with its logprobs, and lets the monitor score
checkpoints as tasks **beside** the stream: a token callback never waits for the scorer.

**One decider.** When a score arrives, the handler hands it to its
:class:`~finece_guard.runtime.decider.InStreamDecider` — the one component that decides while an
answer streams (confirming by look-ahead BCI when a policy asks). A decision that stops the
stream (abort, early retrieval) is raised as :class:`~finece_guard.errors.GenerationAborted` from
the *next* token callback, whatever the mode (``invoke``, ``stream``, ``astream``,
``astream_events``, agents): ``raise_error = True`` makes LangChain propagate it, which closes the
HTTP stream and so cancels the request inside vLLM. The run's trace then says
``finish_reason="aborted"`` and is never labelled a finished answer. Everyone else (the guard,
the middleware, event streams) only *reports* what was decided: each decision and scored
checkpoint is put on the session's event queue.

Sync and async: the handler runs *inline* (``run_inline = True``); a run's state lives on one
event loop — the guard session's loop, else the caller's running loop, else the package's one
bridge loop (:mod:`finece_guard.sync_bridge`) for plain sync code.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage
from langchain_core.outputs import LLMResult
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import patch_config

from finece_guard.backends.base import BaseScorer
from finece_guard.config import setting_default
from finece_guard.errors import ConfigError, GenerationAborted
from finece_guard.runtime.bci import ContinuationSampler, LookAhead
from finece_guard.runtime.checkpoints import CheckpointStrategy
from finece_guard.runtime.decider import HandlerEvent, InStreamDecider, RunState, SessionBudget
from finece_guard.runtime.monitor import PartialScoreLimit, RunMonitor
from finece_guard.runtime.policies.base import Decision, Policy
from finece_guard.runtime.policies.compose import Budget
from finece_guard.runtime.text import QUESTION_KEY, SESSION_KEY, chunk_token_events, question_of_messages
from finece_guard.sync_bridge import bridge_loop, call_on
from finece_guard.types import Score, ScoredCheckpoint, Trace

_ALPHA = setting_default("bci_alpha")
_WINDOW = setting_default("bci_window")
_DEADLINE_S = setting_default("score_deadline_s")
_MAX_PARTIAL = setting_default("max_partial_scores")

T = TypeVar("T")

__all__ = ["QUESTION_KEY", "SESSION_KEY", "FineCECallbackHandler", "HandlerEvent", "SessionBudget"]  # re-exported


class _HideAbortWarnings(logging.Filter):
    """LangChain logs "Error in ... callback" for every exception a callback raises, even one it then
    re-raises (``raise_error``). :class:`GenerationAborted` is this handler's way to close a stream on
    purpose, not an error: its warning is dropped (every other callback error still shows)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        return not any(isinstance(a, str) and a.startswith(f"{GenerationAborted.__name__}(") for a in args)


logging.getLogger("langchain_core.callbacks.manager").addFilter(_HideAbortWarnings())


@dataclass
class _Session:
    loop: asyncio.AbstractEventLoop
    budget: SessionBudget
    events: asyncio.Queue[HandlerEvent] = field(default_factory=asyncio.Queue)
    runs: list[UUID] = field(default_factory=list)
    stop: Decision | None = None  # set by the owner (e.g. the caller stopped): raised at the next token
    question_score: tuple[str, Score] | None = None  # (scored question, its score) already asked for


class FineCECallbackHandler(BaseCallbackHandler):
    """Scores streaming chat-model runs with FineCE and makes the in-stream decisions.

    Args:
        scorer: the FineCE scorer (e.g. :class:`~finece_guard.OpenAICompatScorer`).
        strategy: where to score (default paragraph ends).
        policies: policies asked at each scored checkpoint (abort, early retrieval).
        budget: the caps an in-stream retrieval must respect (the guard passes its own).
        sampler: continuation sampler for look-ahead confirmation (e.g.
            :class:`~finece_guard.OpenAICompatGenerator` of the generator model); required when a
            policy has ``confirm=LookAhead(...)``.
        alpha, window: BCI settings (retrospective for the finished trace, and look-ahead).
        deadline_s: how long the end of a run may wait for pending scores; later ones are
            recorded as errors, never awaited past this.
        max_kept: finished traces kept for retrieval (oldest dropped first).
    """

    raise_error: bool = True
    run_inline: bool = True

    def __init__(
        self,
        scorer: BaseScorer,
        *,
        strategy: CheckpointStrategy | None = None,
        policies: Sequence[Policy] = (),
        budget: Budget | None = None,
        sampler: ContinuationSampler | None = None,
        alpha: float = _ALPHA,
        window: int = _WINDOW,
        deadline_s: float = _DEADLINE_S,
        score_question: bool = True,
        max_kept: int = 1024,
        max_partial_scores: int | None = _MAX_PARTIAL,
    ) -> None:
        if not isinstance(deadline_s, int | float) or not deadline_s > 0 or deadline_s == float("inf"):
            raise ConfigError(f"deadline_s={deadline_s!r} must be a finite number of seconds > 0 (e.g. 30.0)")
        confirming = [p.name for p in policies if isinstance(getattr(p, "confirm", None), LookAhead)]
        if confirming and sampler is None:
            raise ConfigError(
                f"policy {confirming[0]} confirms with LookAhead, which samples continuations from the generator: "
                "pass sampler=OpenAICompatGenerator(BASE_URL, model=GENERATOR_MODEL)"
            )
        self.scorer = scorer
        self.strategy = strategy
        self.policies = tuple(policies)
        self.budget = budget or Budget()
        self.alpha = alpha
        self.window = window
        self.deadline_s = float(deadline_s)
        self.score_question = score_question
        #: shared by all runs of this handler: partial scores in flight together (None: no cap)
        self.partial_limit = None if max_partial_scores is None else PartialScoreLimit(max_partial_scores)
        self.max_kept = max_kept
        self.decider = InStreamDecider(
            self.policies, self.budget, scorer=scorer, sampler=sampler, alpha=alpha, emit=self._emit,
            budget_of=self._budget,
        )  # fmt: skip
        self._runs: dict[UUID, RunState] = {}
        self._sessions: dict[str, _Session] = {}
        self._traces: OrderedDict[UUID, Trace] = OrderedDict()

    # ----------------------------------------------------------------- sessions
    def open_session(
        self, session: str, budget: SessionBudget | None = None, question_score: tuple[str, Score] | None = None
    ) -> asyncio.Queue[HandlerEvent]:
        """Register a session (one guarded attempt) on the running loop; returns its event queue.

        ``question_score``: ``(question, score)`` of a question-only state the owner already scored;
        a run of this session asked about that same question records it instead of asking again."""
        state = _Session(asyncio.get_running_loop(), budget or SessionBudget(), question_score=question_score)
        self._sessions[session] = state
        return state.events

    def config_for(self, config: RunnableConfig, session: str, question: str) -> RunnableConfig:
        """``config`` with this handler attached (inherited by every model run inside) and the session tagged.

        ``question`` is what the scorer is asked about (the question, with any retrieved passages).
        """
        out = patch_config(config)
        callbacks = config.get("callbacks")
        if callbacks is None or isinstance(callbacks, list):
            out["callbacks"] = [*(callbacks or []), self]
        else:
            manager = callbacks.copy()
            manager.add_handler(self, inherit=True)
            out["callbacks"] = manager
        out["metadata"] = {**(config.get("metadata") or {}), SESSION_KEY: session, QUESTION_KEY: question}
        return out

    def stop_session(self, session: str, decision: Decision) -> None:
        """Ask the session's runs to stop at their next token (raised as GenerationAborted). Thread-safe."""
        state = self._sessions.get(session)
        if state is not None:
            state.stop = decision

    async def aclose_session(self, session: str) -> None:
        """Cancel what a session still runs (scores, confirmations, finishing) and drop its state."""
        state = self._sessions.pop(session, None)
        if state is None:
            return
        for rid in state.runs:
            run = self._runs.pop(rid, None)
            self._traces.pop(rid, None)
            if run is None:
                continue
            await self._cancel_run(run)

    async def _cancel_run(self, run: RunState) -> None:
        run.ended = True
        tasks = [t for t in (run.confirming, run.finish) if t is not None and not t.done()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await run.monitor.cancel()

    @property
    def active_runs(self) -> int:
        """Runs whose state the handler still holds (0 after every guarded call has returned)."""
        return len(self._runs)

    def pending_tasks(self) -> int:
        """Scoring, confirmation and finishing tasks not done yet, over all runs."""
        n = 0
        for run in list(self._runs.values()):
            n += run.monitor.pending
            n += sum(1 for t in (run.confirming, run.finish) if t is not None and not t.done())
        return n

    # ----------------------------------------------------------------- plumbing
    def _loop_for(self, session: str | None) -> asyncio.AbstractEventLoop:
        state = self._sessions.get(session) if session else None
        if state is not None:
            return state.loop
        try:
            return asyncio.get_running_loop()
        except RuntimeError:
            return bridge_loop()

    def _emit(self, run: RunState, event: HandlerEvent) -> None:
        state = self._sessions.get(run.session) if run.session else None
        if state is not None:
            state.events.put_nowait(event)

    def _budget(self, run: RunState) -> SessionBudget:
        state = self._sessions.get(run.session) if run.session else None
        return state.budget if state else SessionBudget()

    # ---------------------------------------------------------------- callbacks
    def _start(self, run_id: UUID, question: str | None, metadata: dict[str, Any] | None) -> None:
        meta = metadata or {}
        q = str(meta.get(QUESTION_KEY) or question or "")
        if not q.strip():
            return  # nothing to score against; the run is not tracked
        session = str(meta[SESSION_KEY]) if meta.get(SESSION_KEY) else None
        loop = self._loop_for(session)

        def create() -> None:
            run: RunState

            def scored(sc: ScoredCheckpoint) -> None:
                self.decider.on_scored(run, sc)

            state = self._sessions.get(session) if session else None
            known = state.question_score if state is not None else None
            monitor = RunMonitor(
                q, self.scorer, self.strategy, alpha=self.alpha, window=self.window,
                score_question=self.score_question, deadline_s=self.deadline_s, on_scored=scored,
                partial_limit=self.partial_limit, question_score=known[1] if known and known[0] == q else None,
            )  # fmt: skip
            run = RunState(monitor, session, loop)
            self._runs[run_id] = run
            if state is not None:
                state.runs.append(run_id)

        call_on(loop, create)

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        question: str | None = None
        if not (metadata or {}).get(QUESTION_KEY):
            question = question_of_messages(messages[0]) if messages else None
        self._start(run_id, question, metadata)

    def on_llm_start(
        self,
        serialized: dict[str, Any],
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._start(run_id, prompts[0] if prompts else None, metadata)

    def on_llm_new_token(
        self,
        token: str | list[str | dict[str, Any]],
        *,
        chunk: Any = None,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        text = (
            token
            if isinstance(token, str)
            else "".join(t if isinstance(t, str) else str(t.get("text", "")) for t in token)
        )
        self._on_text(run_id, text, chunk, kwargs.get("logprobs"))

    def on_stream_event(
        self,
        event: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        """The content-block protocol of ``stream_events(version="v3")``: text deltas are tokens.

        These events carry no logprobs, so entropy checkpoints see none (paragraph and periodic
        checkpoints work as usual); an abort is raised from here exactly as from a token callback.
        """
        if not isinstance(event, dict) or event.get("event") != "content-block-delta":
            return
        delta = event.get("delta") or {}
        if isinstance(delta, dict) and delta.get("type") == "text-delta" and delta.get("text"):
            self._on_text(run_id, str(delta["text"]), None, None)

    def _on_text(self, run_id: UUID, text: str, chunk: Any, logprobs: Any) -> None:
        run = self._runs.get(run_id)
        if run is None:
            return

        def feed() -> Decision | None:
            if run.ended:
                return None
            stop = self._stop_of(run)
            if stop is None:
                for event in chunk_token_events(text, chunk, logprobs, len(run.monitor.tokens)):
                    run.monitor.feed(event)
                return None
            run.raised = True
            return stop

        decision = call_on(run.loop, feed)
        if decision is not None:
            raise GenerationAborted(decision, run_id)

    def _stop_of(self, run: RunState) -> Decision | None:
        if run.stop is not None:
            return run.stop
        state = self._sessions.get(run.session) if run.session else None
        if state is not None and state.stop is not None:
            run.stop = state.stop
            run.decisions.append(state.stop)
            return state.stop
        return None

    def _end(self, run_id: UUID, finished: bool, finish_reason: str | None) -> None:
        run = self._runs.get(run_id)
        if run is None or run.finish is not None:
            return

        def schedule() -> None:
            run.ended = True
            if run.confirming is not None:
                run.confirming.cancel()
            stopped = run.raised
            reason = "aborted" if stopped else finish_reason
            run.finish = run.loop.create_task(self._finish(run_id, run, not stopped and finished, reason, not stopped))

        call_on(run.loop, schedule)

    async def _finish(self, run_id: UUID, run: RunState, finished: bool, reason: str | None, score_last: bool) -> Trace:
        if run.confirming is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await run.confirming
        trace = await run.monitor.finish(finished=finished, finish_reason=reason, score_last=score_last)
        meta: dict[str, Any] = {**trace.meta, "run_id": str(run_id), "session": run.session}
        if run.raised and run.stop is not None:
            meta["aborted"] = dataclasses.asdict(run.stop)
        if run.decisions:
            meta["decisions"] = [dataclasses.asdict(d) for d in run.decisions]
        if run.lookaheads:
            meta["lookahead"] = list(run.lookaheads)
            meta["lookahead_cost"] = {
                "tokens": sum(int(x.get("tokens", 0)) for x in run.lookaheads),
                "requests": sum(int(x.get("requests", 0)) for x in run.lookaheads),
                "seconds": sum(float(x.get("seconds", 0.0)) for x in run.lookaheads),
            }
        for sc in trace.checkpoints:  # the final state (and late scores) are events too
            if run.scored.get(sc.checkpoint.position) is not sc:
                run.scored[sc.checkpoint.position] = sc
                self._emit(run, sc)
        trace = dataclasses.replace(trace, meta=meta)
        self._keep(run_id, trace)
        if run.session is None:  # not owned by a guarded session: the kept trace is all that stays
            self._runs.pop(run_id, None)
        return trace

    def on_llm_end(
        self, response: LLMResult, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        reason: str | None = None
        with contextlib.suppress(IndexError, AttributeError, TypeError):
            info = response.generations[0][-1].generation_info or {}
            reason = info.get("finish_reason")
        if reason is None:
            with contextlib.suppress(IndexError, AttributeError, TypeError):
                msg = getattr(response.generations[0][-1], "message", None)
                reason = msg.response_metadata.get("finish_reason") if msg is not None else None
        self._end(run_id, finished=reason in (None, "stop"), finish_reason=reason or "stop")

    def on_llm_error(
        self, error: BaseException, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        if isinstance(error, GenerationAborted):
            self._end(run_id, finished=False, finish_reason="aborted")
        else:
            self._end(run_id, finished=False, finish_reason=f"error: {type(error).__name__}: {error}")

    # ------------------------------------------------------------------ results
    def _keep(self, run_id: UUID, trace: Trace) -> None:
        self._traces[run_id] = trace
        while len(self._traces) > self.max_kept:
            old, _ = self._traces.popitem(last=False)
            self._runs.pop(old, None)

    async def atrace(self, run_id: UUID) -> Trace:
        """The finished trace of a run (waits at most the deadline for its pending scores)."""
        if run_id in self._traces:
            return self._traces[run_id]
        run = self._runs.get(run_id)
        if run is None or run.finish is None:
            raise KeyError(f"run {run_id} is unknown or has not ended")
        task = run.finish
        if run.loop is asyncio.get_running_loop():
            return await task

        async def wait() -> Trace:
            return await task

        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(wait(), run.loop))

    async def atraces_for_session(self, session: str) -> list[Trace]:
        """Finished traces of every model run of ``session`` (in start order)."""
        state = self._sessions.get(session)
        rids = list(state.runs) if state else []
        return [await self.atrace(rid) for rid in rids if self._ended(rid)]

    def _ended(self, run_id: UUID) -> bool:
        run = self._runs.get(run_id)
        return run_id in self._traces or (run is not None and run.finish is not None)

    def trace(self, run_id: UUID) -> Trace:
        """Sync variant of :meth:`atrace` (not inside a running loop)."""
        from finece_guard.sync_bridge import run_sync

        return run_sync(self.atrace(run_id))

    @property
    def traces(self) -> dict[UUID, Trace]:
        """Finished traces kept so far, by model run id."""
        return dict(self._traces)

    def close(self) -> None:
        """Kept for compatibility: the handler owns no loop or thread any more (nothing to stop)."""

    def __enter__(self) -> FineCECallbackHandler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
