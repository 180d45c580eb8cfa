"""The LangChain callback handler: FineCE scoring beside any streaming chat model, per run.

Attach :class:`FineCECallbackHandler` to a chat model that streams from an OpenAI-compatible
endpoint with logprobs (``ChatOpenAI(base_url=..., logprobs=True, top_logprobs=5)``) or to any
chain containing one. For each model run it keeps a :class:`~finece_guard.monitor.RunMonitor`
keyed by the run's ``run_id`` (one handler serves any number of concurrent runs without
cross-talk), feeds it every streamed token with its logprobs, and lets the monitor score
checkpoints as tasks **beside** the stream: a token callback never waits for the scorer.

When a score arrives, in-stream policies (:class:`~finece_guard.policies.AbortBelow`) are asked;
an abort raises :class:`~finece_guard.errors.GenerationAborted` from the token callback.
``raise_error = True`` makes LangChain propagate it, which closes the HTTP stream and so cancels
the request inside vLLM. The run's trace is kept either way (finished, aborted or failed).

Sync and async: the handler runs *inline* (``run_inline = True``). Under ``astream``/``ainvoke``
its scoring tasks run on your event loop; under ``stream``/``invoke`` (no running loop) they run
on a small background event loop the handler owns, so the sync path never blocks on scoring
either. Call :meth:`close` (or use the handler as a context manager) to stop that loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import Future as ThreadFuture
from dataclasses import dataclass, field
from typing import Any, TypeVar
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage, HumanMessage
from langchain_core.outputs import LLMResult

from finece_guard.backends.base import BaseScorer
from finece_guard.backends.openai_generator import logprob_token_events
from finece_guard.checkpoints import CheckpointStrategy
from finece_guard.errors import ConfigError, GenerationAborted
from finece_guard.monitor import RunMonitor
from finece_guard.policies.base import Decision, Policy, PolicyView
from finece_guard.policies.compose import decide_in_stream
from finece_guard.types import ScoredCheckpoint, TokenEvent, Trace

#: metadata keys the guard (or a user) sets in the run config to steer the handler
QUESTION_KEY = "finece_question"
SESSION_KEY = "finece_session"

T = TypeVar("T")
HandlerEvent = ScoredCheckpoint | Decision


@dataclass
class _Run:
    monitor: RunMonitor
    session: str | None
    scored: list[ScoredCheckpoint] = field(default_factory=list)
    events: list[HandlerEvent] = field(default_factory=list)
    aborted: Decision | None = None
    finish: asyncio.Task[Trace] | None = None
    loop: asyncio.AbstractEventLoop | None = None


def _message_text(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    return "".join(b if isinstance(b, str) else str(b.get("text", "")) for b in content if isinstance(b, str | dict))


def question_of_messages(messages: Sequence[BaseMessage]) -> str:
    """The question of a chat: the text of its last human message."""
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            return _message_text(message)
    raise ConfigError(
        "cannot find the question: the chat has no human message. Pass metadata "
        f"{{'{QUESTION_KEY}': '...'}} in the run config to say what the question is."
    )


def token_events(token: str, chunk: Any, logprobs: Any, start: int) -> list[TokenEvent]:
    """TokenEvents of one streamed chunk, from ``logprobs`` or the chunk's generation_info."""
    lp = logprobs
    if lp is None and chunk is not None:
        lp = (getattr(chunk, "generation_info", None) or {}).get("logprobs")
    content = lp.get("content") if isinstance(lp, dict) else lp if isinstance(lp, list) else None
    return logprob_token_events(token, content, start)


class _BackgroundLoop:
    """An event loop on a daemon thread, for the sync path."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="finece-scoring", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> ThreadFuture[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        if not self.loop.is_running():
            self.loop.close()


class FineCECallbackHandler(BaseCallbackHandler):
    """Scores streaming chat-model runs with FineCE and applies in-stream policies (abort).

    Args:
        scorer: the FineCE scorer (e.g. :class:`~finece_guard.OpenAICompatScorer`).
        strategy: where to score (default paragraph ends).
        policies: policies asked at each scored checkpoint; only ABORT acts here.
        alpha, window: retrospective BCI settings for the finished trace.
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
        alpha: float = 0.5,
        window: int = 2,
        deadline_s: float = 30.0,
        score_question: bool = True,
        max_kept: int = 1024,
    ) -> None:
        if deadline_s <= 0:
            raise ConfigError(f"deadline_s={deadline_s} must be positive")
        self.scorer = scorer
        self.strategy = strategy
        self.policies = tuple(policies)
        self.alpha = alpha
        self.window = window
        self.deadline_s = deadline_s
        self.score_question = score_question
        self.max_kept = max_kept
        self._runs: dict[UUID, _Run] = {}
        self._sessions: dict[str, list[UUID]] = {}
        self._traces: OrderedDict[UUID, Trace] = OrderedDict()
        self._bg: _BackgroundLoop | None = None
        self._bg_lock = threading.Lock()

    # ----------------------------------------------------------------- plumbing
    def _on_loop(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the running loop's thread, or on the background loop (sync path)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            return fn()

        async def call() -> T:
            return fn()

        return self._background().run(call()).result()

    def _background(self) -> _BackgroundLoop:
        with self._bg_lock:
            if self._bg is None:
                self._bg = _BackgroundLoop()
            return self._bg

    def close(self) -> None:
        """Stop the background scoring loop of the sync path (if one was started)."""
        with self._bg_lock:
            if self._bg is not None:
                self._bg.stop()
                self._bg = None

    def __enter__(self) -> FineCECallbackHandler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- callbacks
    def _start(self, run_id: UUID, question: str | None, metadata: dict[str, Any] | None) -> None:
        meta = metadata or {}
        q = str(meta.get(QUESTION_KEY) or question or "")
        if not q.strip():
            return  # nothing to score against; the run is not tracked

        def create() -> None:
            monitor = RunMonitor(
                q, self.scorer, self.strategy, alpha=self.alpha, window=self.window,
                score_question=self.score_question, deadline_s=self.deadline_s,
            )  # fmt: skip
            session = meta.get(SESSION_KEY)
            run = _Run(monitor, str(session) if session else None, loop=asyncio.get_running_loop())
            self._runs[run_id] = run
            if run.session:
                self._sessions.setdefault(run.session, []).append(run_id)

        self._on_loop(create)

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
        run = self._runs.get(run_id)
        if run is None or run.aborted is not None:
            return

        def feed() -> Decision | None:
            text = (
                token
                if isinstance(token, str)
                else "".join(t if isinstance(t, str) else str(t.get("text", "")) for t in token)
            )
            for event in token_events(text, chunk, kwargs.get("logprobs"), len(run.monitor.tokens)):
                run.monitor.feed(event)
            return self._check(run)

        decision = self._on_loop(feed)
        if decision is not None:
            raise GenerationAborted(decision, run_id)

    def _check(self, run: _Run) -> Decision | None:
        new = run.monitor.scored_now()
        if not new:
            return None
        run.scored.extend(new)
        run.events.extend(new)
        if not self.policies:
            return None
        scored = sorted(run.scored, key=lambda sc: sc.checkpoint.position)
        view = PolicyView(
            question=run.monitor.question,
            text=run.monitor.text,
            n_tokens=len(run.monitor.tokens),
            checkpoints=tuple(scored),
            raw=tuple(sc.score.value if sc.score else None for sc in scored),
            phase="checkpoint",
        )
        decision = decide_in_stream(self.policies, view)
        if decision.acts:
            run.aborted = decision
            run.events.append(decision)
            return decision
        return None

    def _end(self, run_id: UUID, finished: bool, finish_reason: str | None) -> None:
        run = self._runs.get(run_id)
        if run is None or run.finish is not None:
            return

        async def finish() -> Trace:
            trace = await run.monitor.finish(finished=finished, finish_reason=finish_reason)
            run.scored = list(trace.checkpoints)
            meta = {**trace.meta, "run_id": str(run_id), "session": run.session}
            if run.aborted is not None:
                meta["aborted"] = dataclasses.asdict(run.aborted)
            trace = dataclasses.replace(trace, meta=meta)
            self._keep(run_id, trace)
            return trace

        def schedule() -> None:
            run.finish = asyncio.get_running_loop().create_task(finish())

        self._on_loop(schedule)

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
            run = self._runs.pop(old, None)
            if run is not None and run.session and run.session in self._sessions:
                self._sessions.pop(run.session, None)

    def drain_events(self, session: str) -> list[HandlerEvent]:
        """Scored checkpoints and decisions of a session's runs since the last call."""

        def drain() -> list[HandlerEvent]:
            out: list[HandlerEvent] = []
            for rid in self._sessions.get(session, ()):
                run = self._runs.get(rid)
                if run is None:
                    continue
                if run.aborted is None and run.finish is None:
                    self._check(run)
                else:  # ended: no more decisions, but late scores are still events
                    late = run.monitor.scored_now()
                    run.scored.extend(late)
                    run.events.extend(late)
                out += run.events
                run.events = []
            return out

        return self._on_loop(drain)

    async def atrace(self, run_id: UUID) -> Trace:
        """The finished trace of a run (waits at most the deadline for its pending scores)."""
        if run_id in self._traces:
            return self._traces[run_id]
        run = self._runs.get(run_id)
        if run is None or run.finish is None:
            raise KeyError(f"run {run_id} is unknown or has not ended")
        task = run.finish
        loop = asyncio.get_running_loop()
        if run.loop is loop:
            return await task

        async def wait() -> Trace:
            return await task

        assert run.loop is not None
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(wait(), run.loop))

    async def atraces_for_session(self, session: str) -> list[Trace]:
        """Finished traces of every model run tagged with ``session`` (in start order)."""
        return [await self.atrace(rid) for rid in list(self._sessions.get(session, ())) if self._ended(rid)]

    def _ended(self, run_id: UUID) -> bool:
        run = self._runs.get(run_id)
        return run_id in self._traces or (run is not None and run.finish is not None)

    def trace(self, run_id: UUID) -> Trace:
        """Sync variant of :meth:`atrace` (not inside a running loop)."""
        return asyncio.run(self.atrace(run_id))

    @property
    def traces(self) -> dict[UUID, Trace]:
        """Finished traces kept so far, by model run id."""
        return dict(self._traces)

    def forget(self, session: str) -> None:
        """Drop a session's runs and traces (the guard calls this when it is done)."""

        def drop() -> None:
            for rid in self._sessions.pop(session, []):
                self._runs.pop(rid, None)
                self._traces.pop(rid, None)

        self._on_loop(drop)
