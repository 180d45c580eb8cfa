"""Scoring under load: one partial score in flight per run, newer checkpoints supersede waiting ones."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from finece_guard.errors import ConfigError
from finece_guard.runtime.checkpoints import Periodic
from finece_guard.runtime.monitor import PartialScoreLimit, RunMonitor
from finece_guard.testing import KeywordScorer
from finece_guard.types import CheckpointKind, TokenEvent


class _Gated(KeywordScorer):
    """Partial scores wait until the test opens the gate (deterministic, whatever the machine's load)."""

    def __init__(self) -> None:
        super().__init__(lambda q, a, k: 0.5)
        self.gate = asyncio.Event()

    async def ascore(self, question: str, answer: str | None, kind: CheckpointKind) -> Any:
        if kind is CheckpointKind.PARTIAL:
            await self.gate.wait()
        return await super().ascore(question, answer, kind)


@pytest.mark.asyncio
async def test_a_slow_scorer_sees_at_most_one_partial_per_run_and_skips_are_recorded() -> None:
    scorer = _Gated()
    monitor = RunMonitor("q?", scorer, Periodic(2))
    for i in range(40):  # 20 checkpoints asked for while the first partial score is still in flight
        monitor.feed(TokenEvent(i, f"t{i} "))
        await asyncio.sleep(0)
        assert monitor.pending <= 2  # the question-only score and one partial, never more
    scorer.gate.set()
    trace = await monitor.finish()
    kinds = [sc.checkpoint.kind for sc in trace.checkpoints]
    assert kinds[0] is CheckpointKind.QUESTION and kinds[-1] is CheckpointKind.FINAL
    assert all(sc.score is not None for sc in trace.checkpoints)  # nothing scored was lost
    skipped = trace.meta["skipped"]
    # the first partial was in flight; each newer one superseded the one waiting, the last by the answer's end
    assert [s["n_tokens"] for s in skipped] == list(range(4, 41, 2))
    assert all("superseded" in s["skipped"] for s in skipped) and "end of the answer" in skipped[-1]["skipped"]
    partial = CheckpointKind.PARTIAL
    partial_tokens = [sc.checkpoint.n_tokens for sc in trace.checkpoints if sc.checkpoint.kind is partial]
    assert partial_tokens == [2] and len(partial_tokens) + len(skipped) == 20
    assert [sc.checkpoint.position for sc in trace.checkpoints] == list(range(len(trace.checkpoints)))


@pytest.mark.asyncio
async def test_cancel_leaves_no_pending_score() -> None:
    monitor = RunMonitor("q?", KeywordScorer(lambda q, a, k: 0.5, delay_s=5.0), Periodic(1))
    monitor.feed(TokenEvent(0, "a "))
    assert monitor.pending == 2
    await monitor.cancel()
    assert monitor.pending == 0


@pytest.mark.asyncio
async def test_a_shared_partial_limit_caps_partial_scores_across_runs_but_never_question_or_final() -> None:
    scorer = _Gated()
    limit = PartialScoreLimit(2)
    monitors = [RunMonitor(f"q{i}?", scorer, Periodic(2), partial_limit=limit) for i in range(6)]
    for i in range(8):
        for m in monitors:
            m.feed(TokenEvent(i, f"t{i} "))
        await asyncio.sleep(0)
        assert limit.in_flight <= 2
    assert sum(m.pending for m in monitors) == 2  # the question-only scores are done; 2 partial ones wait
    scorer.gate.set()
    traces = await asyncio.gather(*(m.finish() for m in monitors))
    assert limit.in_flight == 0  # every slot came back
    for t in traces:
        kinds = [sc.checkpoint.kind for sc in t.checkpoints]
        assert kinds[0] is CheckpointKind.QUESTION and kinds[-1] is CheckpointKind.FINAL
        assert all(sc.score is not None for sc in t.checkpoints)
    held_back = [s for t in traces for s in t.meta.get("skipped", [])]
    assert any("across runs" in s["skipped"] for s in held_back)
    with pytest.raises(ConfigError, match="max_partial_scores"):
        PartialScoreLimit(0)


@pytest.mark.asyncio
async def test_a_cancelled_run_gives_its_partial_slot_back() -> None:
    limit = PartialScoreLimit(1)
    monitor = RunMonitor("q?", KeywordScorer(lambda q, a, k: 0.5, delay_s=5.0), Periodic(1), partial_limit=limit)
    monitor.feed(TokenEvent(0, "a "))
    assert limit.in_flight == 1
    await monitor.cancel()
    assert limit.in_flight == 0


@pytest.mark.asyncio
async def test_a_finished_partial_score_hands_its_slot_to_the_runs_held_checkpoint_at_once() -> None:
    scorer = _Gated()
    limit = PartialScoreLimit(1)
    monitor = RunMonitor("q?", scorer, Periodic(2), partial_limit=limit)
    for i in range(4):  # a partial at 2 tokens goes out; the one at 4 waits behind it
        monitor.feed(TokenEvent(i, f"t{i} "))
        await asyncio.sleep(0)
    assert [c.n_tokens for c in monitor.checkpoints if c.kind is CheckpointKind.PARTIAL] == [2]
    scorer.gate.set()
    for _ in range(5):  # no further token: the held checkpoint must not wait for one
        await asyncio.sleep(0)
    assert [c.n_tokens for c in monitor.checkpoints if c.kind is CheckpointKind.PARTIAL] == [2, 4]
    assert limit.in_flight <= 1
    await monitor.cancel()
    assert limit.in_flight == 0
