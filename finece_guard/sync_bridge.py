"""The one sync/async bridge of the package: a long-lived event loop on a daemon thread.

Everything in finece_guard is async first. Sync entry points (``FineCEGuard.invoke/stream/batch``,
``BaseScorer.score``, the middleware's ``wrap_model_call``, a callback handler serving a sync
model stream) run their coroutines **here**, on one loop that lives as long as the process:

* a fresh loop per call (``asyncio.run``) would break HTTP clients that bind to the first loop
  that used them (our own per-loop clients would be rebuilt on every call);
* the caller's :mod:`contextvars` (LangChain's run config, LangGraph's stream writer, tracing)
  are copied into the task, so the coroutine sees the same context as the sync caller;
* cancellation is real: closing a sync iterator or interrupting a wait cancels the task on the
  loop, and the coroutine's ``finally`` blocks run before the call returns.

Sync code that must not touch an async client bound to another loop (langchain-openai caches
one per process) should do its blocking I/O in a worker thread (:func:`asyncio.to_thread`) from
inside the coroutine; the guard does exactly that for sync model streams.
"""

from __future__ import annotations

import asyncio
import contextvars
import queue
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None


def bridge_loop() -> asyncio.AbstractEventLoop:
    """The bridge's event loop (started on first use)."""
    global _loop, _thread
    with _lock:
        if _loop is None or _loop.is_closed() or _thread is None or not _thread.is_alive():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="finece-guard-bridge", daemon=True)
            thread.start()
            _loop, _thread = loop, thread
        return _loop


def in_running_loop() -> bool:
    """Whether the calling thread is running an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class _Submitted:
    """A coroutine running as a task on the bridge loop, seen from a sync thread."""

    def __init__(self, coro: Coroutine[Any, Any, Any], context: contextvars.Context | None) -> None:
        self.loop = bridge_loop()
        self.finished = threading.Event()
        self.outcome: tuple[str, Any] = ("cancelled", None)
        self._task: asyncio.Task[Any] | None = None
        self._cancel_requested = False
        ctx = context if context is not None else contextvars.copy_context()

        def start() -> None:
            task = self.loop.create_task(coro, context=ctx)
            self._task = task
            task.add_done_callback(self._done)
            if self._cancel_requested:
                task.cancel()

        self.loop.call_soon_threadsafe(start)

    def _done(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            self.outcome = ("cancelled", None)
        elif (exc := task.exception()) is not None:
            self.outcome = ("error", exc)
        else:
            self.outcome = ("result", task.result())
        self.finished.set()

    def cancel(self) -> None:
        def do() -> None:
            self._cancel_requested = True
            if self._task is not None:
                self._task.cancel()

        self.loop.call_soon_threadsafe(do)

    def wait(self, timeout_s: float | None = None) -> bool:
        return self.finished.wait(timeout_s)


def run_sync(coro: Coroutine[Any, Any, T], *, context: contextvars.Context | None = None) -> T:
    """Run ``coro`` on the bridge loop from sync code and wait for its result.

    Refuses inside a running event loop (that would block it): use the async variant there.
    An interrupt of the wait (KeyboardInterrupt) cancels the coroutine.
    """
    if in_running_loop():
        coro.close()
        raise RuntimeError("called a sync method inside a running event loop; use the async variant (a...) instead")
    if threading.current_thread() is _thread:
        coro.close()
        raise RuntimeError("run_sync called on the bridge loop's own thread; await the coroutine instead")
    job = _Submitted(coro, context)
    try:
        job.wait()
    except BaseException:  # e.g. KeyboardInterrupt: cancel, let the coroutine clean up, re-raise
        job.cancel()
        job.wait(30.0)
        raise
    kind, value = job.outcome
    if kind == "error":
        raise value
    if kind == "cancelled":
        raise asyncio.CancelledError("the bridged coroutine was cancelled")
    return value  # type: ignore[no-any-return]


def call_on(loop: asyncio.AbstractEventLoop, fn: Callable[[], T]) -> T:
    """Run ``fn`` on ``loop``'s thread and wait for its result (``fn`` itself when already there)."""
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        return fn()

    async def call() -> T:
        return fn()

    return asyncio.run_coroutine_threadsafe(call(), loop).result()


def iterate_sync(agen: AsyncIterator[T], *, context: contextvars.Context | None = None) -> Iterator[T]:
    """Drive an async iterator on the bridge loop and yield its items to sync code.

    Closing the returned generator early (``break``) cancels the async side and waits until
    its ``finally`` blocks have run.
    """
    if in_running_loop():
        raise RuntimeError("called a sync iterator inside a running event loop; use the async variant instead")
    items: queue.Queue[tuple[str, Any]] = queue.Queue()

    async def pump() -> None:
        try:
            async for item in agen:
                items.put(("item", item))
        except BaseException as exc:  # handed to the caller's thread, re-raised there
            items.put(("error", exc))
            if isinstance(exc, asyncio.CancelledError):
                raise
        else:
            items.put(("done", None))
        finally:
            aclose = getattr(agen, "aclose", None)
            if aclose is not None:
                await aclose()

    job = _Submitted(pump(), context)
    try:
        while True:
            kind, item = items.get()
            if kind == "item":
                yield item
            elif kind == "error":
                if isinstance(item, asyncio.CancelledError):
                    return
                raise item
            else:
                return
    finally:
        if not job.finished.is_set():
            job.cancel()
        job.wait(30.0)  # the async side's finally blocks have run when this returns
