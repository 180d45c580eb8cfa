"""The append-only JSONL journal shared by build-data, eval and re-scoring."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from finece_guard.journal import Journal, repair_tail


def _parse(line: str) -> object:
    return json.loads(line)


def test_torn_last_line_is_cut_and_next_record_gets_its_own_line(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    path.write_text('{"a": 1}\n{"a": 2, "tor')

    async def go() -> None:
        async with Journal(path, _parse) as j:
            await j.append(json.dumps({"a": 3}))

    asyncio.run(go())
    assert [json.loads(x) for x in path.read_text().splitlines()] == [{"a": 1}, {"a": 3}]


def test_whole_last_line_without_newline_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}')
    repair_tail(path, _parse)
    assert path.read_text() == '{"a": 1}\n{"a": 2}\n'


def test_concurrent_appends_never_interleave(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"

    async def go() -> None:
        async with Journal(path, _parse) as j:
            await asyncio.gather(*(j.append(json.dumps({"i": i, "pad": "x" * 5000})) for i in range(40)))

    asyncio.run(go())
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    assert sorted(r["i"] for r in rows) == list(range(40))


def test_multi_line_record_and_closed_journal_are_refused(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.jsonl", _parse)

    async def closed() -> None:
        await j.append("{}")

    with pytest.raises(RuntimeError, match="not open"):
        asyncio.run(closed())

    async def multi() -> None:
        async with j:
            await j.append("{}\n{}")

    with pytest.raises(ValueError, match="one line"):
        asyncio.run(multi())


def test_gather_or_cancel_stops_the_other_workers_when_one_fails() -> None:
    from finece_guard.journal import gather_or_cancel

    finished: list[int] = []

    async def worker(i: int) -> None:
        if i == 0:
            raise KeyError("boom")
        await asyncio.sleep(0.5)
        finished.append(i)

    async def go() -> None:
        with pytest.raises(KeyError):
            await gather_or_cancel(worker(i) for i in range(4))
        await asyncio.sleep(0.7)  # a worker left running would finish now

    asyncio.run(go())
    assert finished == []


def test_a_committed_gzip_journal_reads_like_the_plain_file_and_is_never_appended_to(tmp_path: Path) -> None:
    import gzip

    from finece_guard.errors import ConfigError
    from finece_guard.evaluation.records import read_records
    from finece_guard.journal import read_journal

    committed = Path(__file__).parents[2] / "reports" / "issue-11-2026-12-02" / "records-dev-75.jsonl.gz"
    plain = tmp_path / "records.jsonl"
    plain.write_bytes(gzip.decompress(committed.read_bytes()))
    from_gz, from_plain = read_records(committed), read_records(plain)
    assert len(from_gz) == 354 and [r.key for r in from_gz] == [r.key for r in from_plain]
    from finece_guard.data.construction import read_dataset

    build = Path(__file__).parents[2] / "data_builds" / "smollm2-2026-12-01" / "train.jsonl.gz"
    assert len(read_dataset([build])) >= 645  # `train --data` takes the committed build as it is

    path = tmp_path / "j.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"a": 1}\n{"a": 2}\n'))
    with pytest.raises(ConfigError, match="gunzip"):
        asyncio.run(Journal(path, _parse).__aenter__())
    path.write_bytes(gzip.compress(b'{"a": 1}\n')[:-6])  # cut short
    with pytest.raises(ConfigError, match="not a readable gzip file"):
        read_journal(path, _parse)
