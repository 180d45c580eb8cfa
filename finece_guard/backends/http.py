"""HTTP plumbing shared by the OpenAI-compatible backends: clients, error mapping, retries.

* One ``httpx.AsyncClient`` per event loop (a client is bound to the loop that made it; sync
  callers share the one loop of :mod:`finece_guard.sync_bridge`), with connect/read timeouts on
  every request.
* Every httpx error is mapped to the library's tree (:mod:`finece_guard.errors`).
* Transient failures (connection errors, timeouts, 408/429/5xx) are retried with tenacity,
  exponential back-off with jitter, bounded by attempts *and* by an overall deadline.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import httpx
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)
from tenacity.stop import stop_base

from finece_guard.errors import (
    BackendConnectionError,
    BackendError,
    BackendHTTPError,
    BackendTimeoutError,
    ConfigError,
)

T = TypeVar("T")


def is_transient(exc: BaseException) -> bool:
    """Errors worth another try."""
    if isinstance(exc, BackendConnectionError | BackendTimeoutError):
        return True
    return isinstance(exc, BackendHTTPError) and exc.retryable


def map_httpx_error(exc: httpx.HTTPError, url: str) -> BackendError:
    """The most specific library error for an httpx error."""
    if isinstance(exc, httpx.TimeoutException):
        return BackendTimeoutError(f"{url} did not answer in time ({type(exc).__name__})")
    if isinstance(exc, httpx.ConnectError | httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        return BackendConnectionError(
            f"cannot reach {url} ({type(exc).__name__}: {exc}). Is the vLLM server running? "
            "Start one with `finece-guard serve` or set FINECE_BASE_URL."
        )
    return BackendError(f"request to {url} failed: {type(exc).__name__}: {exc}")


class OpenAIHTTP:
    """Minimal async client for an OpenAI-compatible server (vLLM), loop-safe, with retries."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str = "EMPTY",
        timeout_s: float = 60.0,
        connect_timeout_s: float = 5.0,
        retries: int = 3,
        deadline_s: float | None = None,
        max_concurrency: int = 8,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"base_url {base_url!r} must start with http:// or https:// (e.g. http://127.0.0.1:8011/v1)"
            )
        if max_concurrency < 1:
            raise ConfigError(f"max_concurrency={max_concurrency} must be at least 1")
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = httpx.Timeout(timeout_s, connect=connect_timeout_s)
        self.retries = retries
        self.deadline_s = deadline_s
        self.max_concurrency = max_concurrency
        self.transport = transport
        self._per_loop: dict[int, tuple[asyncio.AbstractEventLoop, httpx.AsyncClient, asyncio.Semaphore]] = {}

    def _state(self) -> tuple[httpx.AsyncClient, asyncio.Semaphore]:
        loop = asyncio.get_running_loop()
        for key, (lp, _, _) in list(self._per_loop.items()):
            if lp.is_closed():
                del self._per_loop[key]
        entry = self._per_loop.get(id(loop))
        if entry is None or entry[0] is not loop:
            client = httpx.AsyncClient(
                timeout=self.timeout,
                headers={"Authorization": f"Bearer {self.api_key}"},
                limits=httpx.Limits(max_connections=max(self.max_concurrency * 2, 16)),
                transport=self.transport,
            )
            entry = (loop, client, asyncio.Semaphore(self.max_concurrency))
            self._per_loop[id(loop)] = entry
        return entry[1], entry[2]

    async def aclose(self) -> None:
        """Close the client of the running loop."""
        loop = asyncio.get_running_loop()
        entry = self._per_loop.pop(id(loop), None)
        if entry is not None:
            await entry[1].aclose()

    async def _retrying(self, fn: Callable[[], Awaitable[T]]) -> T:
        stop: stop_base = stop_after_attempt(self.retries + 1)
        if self.deadline_s is not None:
            stop = stop | stop_after_delay(self.deadline_s)
        async for attempt in AsyncRetrying(
            stop=stop,
            wait=wait_exponential_jitter(multiplier=0.2, max=2.0),
            retry=retry_if_exception(is_transient),
            reraise=True,
        ):
            with attempt:
                return await fn()
        raise AssertionError("unreachable")  # pragma: no cover

    async def post_json(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        """POST JSON with bounded concurrency, timeouts, retries; returns the decoded body."""
        client, sem = self._state()
        url = f"{self.base_url}{path}"

        async def once() -> dict[str, Any]:
            async with sem:
                try:
                    resp = await client.post(url, json=payload)
                except httpx.HTTPError as exc:
                    raise map_httpx_error(exc, url) from exc
            if resp.status_code >= 400:
                raise BackendHTTPError(resp.status_code, resp.text, url)
            try:
                body: dict[str, Any] = resp.json()
            except ValueError as exc:
                raise BackendError(f"{url} returned non-JSON: {resp.text[:200]!r}") from exc
            return body

        if self.deadline_s is not None:
            try:
                async with asyncio.timeout(self.deadline_s):
                    return await self._retrying(once)
            except TimeoutError as exc:
                raise BackendTimeoutError(f"{url}: no result within the {self.deadline_s} s deadline") from exc
        return await self._retrying(once)

    @asynccontextmanager
    async def stream_sse(self, path: str, payload: dict[str, Any]) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        """Open a server-sent-events stream; yields an iterator of decoded ``data:`` objects.

        Leaving the context closes the connection, which makes vLLM abort the request.
        The stream is not retried once tokens have flowed (a retry would duplicate text).
        """
        client, sem = self._state()
        url = f"{self.base_url}{path}"
        async with sem:
            try:
                async with client.stream("POST", url, json=payload) as resp:
                    if resp.status_code >= 400:
                        body = (await resp.aread()).decode(errors="replace")
                        raise BackendHTTPError(resp.status_code, body, url)
                    yield _iter_sse(resp, url)
            except httpx.HTTPError as exc:
                raise map_httpx_error(exc, url) from exc


async def _iter_sse(resp: httpx.Response, url: str) -> AsyncIterator[dict[str, Any]]:
    try:
        async for line in resp.aiter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                return
            try:
                yield json.loads(data)
            except ValueError as exc:
                raise BackendError(f"{url} sent an unreadable stream event: {data[:200]!r}") from exc
    except httpx.HTTPError as exc:
        raise map_httpx_error(exc, url) from exc
