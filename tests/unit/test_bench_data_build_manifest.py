"""benchmarks/data_build_manifest.py: throughput from a poll log that several sittings appended to."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.data_build_manifest import _tokens_per_s


def test_throughput_counts_only_build_time_and_survives_a_server_restart(tmp_path: Path) -> None:
    log = tmp_path / "metrics.log"
    lines = [
        # sitting 1: 120 s, 600 generated / 2,400 prompt tokens
        "1000 00:00:00 gen=100 prompt=400", "1060 00:01:00 gen=400 prompt=1600", "1120 00:02:00 gen=700 prompt=2800",
        # hours later, a new server: its counters start again at 0
        "9000 02:00:00 gen=0 prompt=0", "9060 02:01:00 gen=300 prompt=900", "garbled line",
    ]  # fmt: skip
    log.write_text("\n".join(lines) + "\n")
    out = _tokens_per_s(log)
    assert out is not None
    assert out["seconds"] == 180 and out["sittings"] == 2
    assert out["generated_tokens"] == 900 and out["prompt_tokens"] == 3300
    assert out["generated_tokens_per_s"] == pytest.approx(5.0)
    log.write_text("1000 00:00:00 gen=1 prompt=1\n")
    assert _tokens_per_s(log) is None and _tokens_per_s(None) is None
