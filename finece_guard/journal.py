"""Append-only JSONL journals: how long runs (build-data, eval, re-scoring) keep finished work.

Everything about a journal lives here: reading it back (:func:`read_journal`, the one record
reader of the package), the settings file next to it (:func:`check_meta`), appending to it
(:class:`Journal`) and the resumable worker pool over it (:func:`run_journaled`, shared by
``build-data``, ``eval`` and re-scoring).

Each finished unit (a question's Monte-Carlo data, an evaluated answer) is one JSON line, written
with one ``write`` on an ``O_APPEND`` descriptor and fsynced, so a run killed at any moment loses
only the units in flight and a re-run skips what is already there. A kill in the middle of a write
leaves a torn last line without its newline; :func:`repair_tail` cuts it off before the next run
appends (otherwise the next record would be glued onto it and both lost). A last line that parses
and only lacks its newline (an edited file) gets the newline instead.

A journal committed to git is gzip-compressed (``.jsonl.gz``): it reads like the plain file (so
``read_records`` / ``load_dataset`` take the committed file as it is), but is never appended to:
decompress it first to resume the run that wrote it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import os
import time
import zlib
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, TypeVar

from finece_guard.errors import ConfigError, FineCEError


class JournalRecord(Protocol):
    """What a journal holds: records with a unique ``key`` that serialise to one JSON line."""

    @property
    def key(self) -> str: ...

    def to_json(self) -> str: ...


Item = TypeVar("Item")
Rec = TypeVar("Rec", bound=JournalRecord)
Report = TypeVar("Report", bound="RunReport")


def journal_lines(path: Path) -> Iterator[str]:
    """The non-blank lines of ``path``, split at b"\\n" only, each decoded on its own.

    ``str.splitlines`` would also split inside a record at the U+2028 / U+2029 / U+0085 that
    ``json.dumps(ensure_ascii=False)`` leaves unescaped in generated text; decoding per line keeps
    a torn line cut inside a UTF-8 character from failing the whole file. An undecodable line is
    skipped (like any unparseable one).
    """
    data = path.read_bytes()
    if path.suffix == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise ConfigError(f"{path} is not a readable gzip file ({exc}); restore it (e.g. `git checkout`)") from exc
    for raw in data.split(b"\n"):
        if not raw.strip():
            continue
        with contextlib.suppress(UnicodeDecodeError):
            yield raw.decode("utf-8")


def read_journal(path: Path, parse: Callable[[str], Rec], keys: Iterable[str] | None = None) -> list[Rec]:
    """Records of ``path`` in file order (a torn or unreadable line is skipped), optionally only ``keys``.

    A key written twice (two runs racing on one file) is read once, first copy wins. A missing
    file holds no records.
    """
    if not path.is_file():
        return []
    wanted = set(keys) if keys is not None else None
    out: dict[str, Rec] = {}
    for line in journal_lines(path):
        with contextlib.suppress(ValueError, TypeError, KeyError):
            rec = parse(line)
            if (wanted is None or rec.key in wanted) and rec.key not in out:
                out[rec.key] = rec
    return list(out.values())


def meta_path(path: Path) -> Path:
    """The settings file of a journal: ``<name>.meta.json`` beside it."""
    return path.with_name(path.name + ".meta.json")


def check_meta(path: Path, meta: dict[str, Any]) -> None:
    """Refuse to append to a non-empty ``path`` made with other settings; write ``meta`` otherwise.

    Every key of either settings dict counts: one added, dropped or changed is a change.
    """
    meta_file = meta_path(path)
    if meta_file.is_file() and path.is_file() and path.stat().st_size > 0:
        try:
            old = json.loads(meta_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read {meta_file} ({exc}); delete it and {path} to start over") from exc
        keys = sorted(set(old) | set(meta))
        diff = {k: (old.get(k), meta.get(k)) for k in keys if old.get(k) != meta.get(k)}
        if diff:
            changes = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in diff.items())
            raise ConfigError(
                f"{path} was written with other settings ({changes}); resume with the same settings, or "
                "pass a new --out"
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    meta_file.write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")


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
        if self.path.suffix == ".gz":
            raise ConfigError(
                f"{self.path} is compressed and cannot be appended to; write to a plain .jsonl file "
                f"(to resume: gunzip -c {self.path} > {self.path.with_suffix('')}, then pass that as --out)"
            )
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


@dataclass
class RunReport:
    """What one journaled run did: items already done, finished now, failed (retried next run)."""

    done_before: int = 0
    finished: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0


async def run_journaled(
    items: Sequence[Item],
    out: Path,
    *,
    key: Callable[[Item], str],
    work: Callable[[Item], Awaitable[Rec]],
    parse: Callable[[str], Rec],
    meta: dict[str, Any],
    concurrency: int,
    report: Report,
    on_done: Callable[[Rec | None], Awaitable[None] | None] | None = None,
) -> Report:
    """``work`` on every item whose key is not yet in the journal ``out``, at most ``concurrency`` at once.

    ``meta`` must match the settings ``out`` was started with (:func:`check_meta`); each finished
    record is appended and fsynced; an item whose ``work`` raises a :class:`FineCEError` is listed
    in :attr:`RunReport.failed` (and retried by the next run); ``on_done`` (sync or async) sees
    every item's record, or None when it failed. ``report`` (a fresh :class:`RunReport` or
    subclass) is filled in and returned.
    """
    if concurrency < 1:
        raise ConfigError(f"concurrency={concurrency} must be at least 1")
    check_meta(out, meta)
    done = {r.key for r in read_journal(out, parse)}
    todo = [item for item in items if key(item) not in done]
    report.done_before = len(items) - len(todo)
    t0 = time.perf_counter()
    sem = asyncio.Semaphore(concurrency)
    journal = Journal(out, parse)  # repairs a torn tail, fsyncs every record

    async def one(item: Item) -> None:
        result: Rec | None = None
        async with sem:
            try:
                result = await work(item)
            except FineCEError as exc:
                report.failed.append((key(item), f"{type(exc).__name__}: {exc}"))
            else:
                await journal.append(result.to_json())
                report.finished += 1
        if on_done is not None:
            maybe = on_done(result)
            if maybe is not None:
                await maybe

    async with journal:
        try:
            await gather_or_cancel(one(item) for item in todo)
        finally:
            report.seconds = time.perf_counter() - t0
    return report
