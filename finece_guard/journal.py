"""Append-only JSONL journals: how long runs (build-data, eval, re-scoring) keep finished work.

Each finished unit (a question's Monte-Carlo data, an evaluated answer) is one JSON line, written
with one ``write`` on an ``O_APPEND`` descriptor and fsynced, so a run killed at any moment loses
only the units in flight and a re-run skips what is already there. A kill in the middle of a write
leaves a torn last line without its newline; :func:`repair_tail` cuts it off before the next run
appends (otherwise the next record would be glued onto it and both lost). A last line that parses
and only lacks its newline (an edited file) gets the newline instead.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any


def repair_tail(path: Path, parse: Callable[[str], object]) -> None:
    """Make ``path`` end with a newline: cut a torn last line, or end a whole one (``parse`` decides)."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if data.endswith(b"\n"):
        return
    start = data.rfind(b"\n") + 1
    try:
        parse(data[start:].decode("utf-8"))
    except (ValueError, TypeError, KeyError):
        with path.open("r+b") as handle:
            handle.truncate(start)
            os.fsync(handle.fileno())
    else:
        with path.open("ab") as handle:
            handle.write(b"\n")
            os.fsync(handle.fileno())


class Journal:
    """An append-only JSONL file for concurrent tasks of one event loop (``async with``).

    Opening repairs a torn tail (see the module docstring); :meth:`append` writes one line
    atomically with respect to the other tasks and fsyncs it before returning.
    """

    def __init__(self, path: Path, parse: Callable[[str], object]) -> None:
        self.path = path
        self._parse = parse
        self._fd: int | None = None
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> Journal:
        self._fd = await asyncio.to_thread(self._open)  # reads the whole file: off the event loop
        return self

    def _open(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        repair_tail(self.path, self._parse)
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    async def append(self, line: str) -> None:
        """Write ``line`` plus a newline and fsync it (one record per call; no newline inside)."""
        if self._fd is None:
            raise RuntimeError(f"journal {self.path} is not open; use `async with Journal(...)`")
        if "\n" in line:
            raise ValueError("a journal record must be one line; serialise it without raw newlines")
        data = (line + "\n").encode("utf-8")
        fd = self._fd
        async with self._lock:  # the disk write and fsync run off the event loop
            await asyncio.to_thread(_write_synced, fd, data)


def _write_synced(fd: int, data: bytes) -> None:
    os.write(fd, data)
    os.fsync(fd)


async def gather_or_cancel(coros: Iterable[Coroutine[Any, Any, None]]) -> None:
    """Run ``coros`` concurrently; if one raises, cancel the others before the error propagates.

    The workers of a journaled run write to the journal: none may outlive the ``async with`` that
    closes it (they would write to a closed, possibly reused, file descriptor).
    """
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
