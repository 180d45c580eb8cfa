"""HTTP plumbing shared by the OpenAI-compatible backends: clients, error mapping, retries.

* One ``httpx.AsyncClient`` per event loop (a client is bound to the loop that made it; sync
  callers share the one loop of :mod:`finece_guard.sync_bridge`), with connect/read timeouts on
  every request.
* Every httpx error is mapped to the library's tree (:mod:`finece_guard.errors`).
* Transient failures (connection errors, timeouts, 408/429/5xx) are retried with tenacity,
  exponential back-off with jitter, bounded by attempts *and* by an overall deadline.
* Every URL and message that leaves this module is redacted (:mod:`finece_guard.redact`): a
  password or key in the base URL, or the API key, never appears in an error or a repr.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)
from tenacity.stop import stop_base

from finece_guard import checks
from finece_guard.errors import (
    BackendConnectionError,
    BackendError,
    BackendHTTPError,
    BackendTimeoutError,
    ConfigError,
)
from finece_guard.redact import redact_text, redact_url

T = TypeVar("T")

EXAMPLE_URL = "http://127.0.0.1:8011/v1"


def is_transient(exc: BaseException) -> bool:
    """Errors worth another try."""
    if isinstance(exc, BackendConnectionError | BackendTimeoutError):
        return True
    return isinstance(exc, BackendHTTPError) and exc.retryable


def map_httpx_error(exc: httpx.HTTPError, url: str, secrets: tuple[str, ...] = ()) -> BackendError:
    """The most specific library error for an httpx error (URL and ``secrets`` redacted)."""
    url = redact_url(url)
    detail = redact_text(str(exc), secrets)
    if isinstance(exc, httpx.TimeoutException):
        return BackendTimeoutError(f"{url} did not answer in time ({type(exc).__name__})")
    if isinstance(exc, httpx.ConnectError | httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        return BackendConnectionError(
            f"cannot reach {url} ({type(exc).__name__}: {detail}). Is the vLLM server running? "
            "Start one with `finece-guard serve` or set FINECE_BASE_URL."
        )
    return BackendError(f"request to {url} failed: {type(exc).__name__}: {detail}")


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
        checks.text("base_url", base_url, example=EXAMPLE_URL)
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"base_url={redact_url(base_url)!r} must start with http:// or https:// (e.g. {EXAMPLE_URL})"
            )
        if not isinstance(api_key, str):
            raise ConfigError(f"api_key must be a string (got a {type(api_key).__name__}), e.g. api_key='EMPTY'")
        parts = urlsplit(base_url)
        #: scheme, host and path of the API root; a query (e.g. ``?api_key=...``) goes after each path
        self.base_url = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
        self.query = parts.query
        #: the base URL as it may be shown (no userinfo, no key in the query)
        self.safe_base_url = redact_url(self.url_for(""))
        self.api_key = api_key
        self.timeout = httpx.Timeout(
            checks.seconds("timeout_s", timeout_s, example=60.0),
            connect=checks.seconds("connect_timeout_s", connect_timeout_s, example=5.0),
        )
        self.retries = checks.integer("retries", retries, low=0, high=20, example=3)
        self.deadline_s = checks.optional_seconds("deadline_s", deadline_s, example=30.0)
        self.max_concurrency = checks.integer("max_concurrency", max_concurrency, low=1, high=1024, example=8)
        self.transport = transport
        self._per_loop: dict[int, tuple[asyncio.AbstractEventLoop, httpx.AsyncClient, asyncio.Semaphore]] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.safe_base_url!r})"

    @property
    def secrets(self) -> tuple[str, ...]:
        """Strings to mask in any text this client produces (the API key)."""
        return (self.api_key,)

    def url_for(self, path: str) -> str:
        """The request URL of ``path`` (e.g. ``/models``) under the API root, the base URL's query kept."""
        return f"{self.base_url}{path}" + (f"?{self.query}" if self.query else "")

    def shown(self, path: str = "") -> str:
        """:meth:`url_for` as it may appear in a message (redacted)."""
        return redact_url(self.url_for(path))

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
        body = await self._request_json("POST", path, payload)
        if not isinstance(body, dict):
            raise BackendError(f"{self.shown(path)} returned JSON that is not an object: {str(body)[:200]!r}")
        return body

    async def get_json(self, path: str, *, timeout_s: float | None = None) -> Any:
        """GET a JSON document (e.g. ``/models``) with timeouts and retries; returns the decoded body."""
        return await self._request_json("GET", path, None, timeout_s=timeout_s)

    async def _request_json(
        self, method: str, path: str, payload: dict[str, Any] | None, *, timeout_s: float | None = None
    ) -> Any:
        client, sem = self._state()
        url = self.url_for(path)
        shown = redact_url(url)
        timeout = self.timeout if timeout_s is None else httpx.Timeout(timeout_s, connect=self.timeout.connect)

        async def once() -> Any:
            async with sem:
                try:
                    resp = await client.request(method, url, json=payload, timeout=timeout)
                except httpx.HTTPError as exc:
                    raise map_httpx_error(exc, url, self.secrets) from exc
            if resp.status_code >= 400:
                raise BackendHTTPError(resp.status_code, redact_text(resp.text, self.secrets), shown)
            try:
                return resp.json()
            except ValueError as exc:
                body = redact_text(resp.text[:200], self.secrets)
                raise BackendError(f"{shown} returned non-JSON: {body!r}") from exc

        if self.deadline_s is not None:
            try:
                async with asyncio.timeout(self.deadline_s):
                    return await self._retrying(once)
            except TimeoutError as exc:
                raise BackendTimeoutError(f"{shown}: no result within the {self.deadline_s} s deadline") from exc
        return await self._retrying(once)

    @asynccontextmanager
    async def stream_sse(self, path: str, payload: dict[str, Any]) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        """Open a server-sent-events stream; yields an iterator of decoded ``data:`` objects.

        Leaving the context closes the connection, which makes vLLM abort the request.
        The stream is not retried once tokens have flowed (a retry would duplicate text).
        """
        client, sem = self._state()
        url = self.url_for(path)
        async with sem:
            try:
                async with client.stream("POST", url, json=payload) as resp:
                    if resp.status_code >= 400:
                        body = redact_text((await resp.aread()).decode(errors="replace"), self.secrets)
                        raise BackendHTTPError(resp.status_code, body, redact_url(url))
                    yield _iter_sse(resp, url, self.secrets)
            except httpx.HTTPError as exc:
                raise map_httpx_error(exc, url, self.secrets) from exc


async def _iter_sse(resp: httpx.Response, url: str, secrets: tuple[str, ...]) -> AsyncIterator[dict[str, Any]]:
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
                shown = redact_text(data[:200], secrets)
                raise BackendError(f"{redact_url(url)} sent an unreadable stream event: {shown!r}") from exc
    except httpx.HTTPError as exc:
        raise map_httpx_error(exc, url, secrets) from exc
