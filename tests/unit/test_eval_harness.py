"""Unit tests for the evaluation harness (finece_guard.evaluation.harness) with fake generator/scorer."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from finece_guard.backends.base import BaseScorer
from finece_guard.backends.openai_generator import Message, StreamStats
from finece_guard.data.construction import TaskSpec
from finece_guard.data.records import AnswerKind, QARecord
from finece_guard.errors import BackendConnectionError, BackendHTTPError, ConfigError, ScoreReadoutError
from finece_guard.evaluation.harness import evaluate_question, replay_checkpoints, run_eval
from finece_guard.evaluation.records import BASELINES, AnswerRecord, StrategyTrace, read_records
from finece_guard.evaluation.settings import EvalConfig
from finece_guard.runtime.bci import refine
from finece_guard.runtime.checkpoints import Entropy, ParagraphEnd, Periodic
from finece_guard.runtime.monitor import RunMonitor
from finece_guard.types import CheckpointKind, Score, TokenEvent

TOP = (("a", -0.1), ("b", -2.5), ("c", -3.0))
FLAT = (("a", -1.1), ("b", -1.1), ("c", -1.1), ("d", -1.2), ("e", -1.3))  # entropy ~1.6 nats


def toks(texts: Sequence[str], flat_at: Sequence[int] = ()) -> list[TokenEvent]:
    return [TokenEvent(i, t, logprob=-0.2, top_logprobs=FLAT if i in flat_at else TOP) for i, t in enumerate(texts)]


ANSWER = ["The", " sky", " is", " blue", ".\n", "It", " scatters", " light", ".\n", "Answer", ":", " A"]


# --------------------------------------------------------------------------- replay


def test_replay_paragraph_prefixes() -> None:
    cps = replay_checkpoints(toks(ANSWER), ParagraphEnd(min_tokens=2))
    assert cps == [(5, "paragraph end"), (9, "paragraph end")]
    assert ["".join(ANSWER[:n]) for n, _ in cps] == ["The sky is blue.\n", "The sky is blue.\nIt scatters light.\n"]


def test_replay_periodic_drops_checkpoint_on_last_token() -> None:
    # every 4 tokens on 12 tokens: 4, 8, 12; the one at 12 is the full answer, not a partial
    assert [n for n, _ in replay_checkpoints(toks(ANSWER), Periodic(every=4))] == [4, 8]
    assert [n for n, _ in replay_checkpoints(toks(ANSWER), Periodic(every=5))] == [5, 10]


def test_replay_entropy_respects_gap() -> None:
    cps = replay_checkpoints(toks(ANSWER, flat_at=(1, 2, 6, 10)), Entropy(threshold=1.5, min_gap=3))
    # token 1 (2 tokens seen) is before the gap; token 2 -> n=3; token 6 -> n=7; token 10 -> n=11
    assert [n for n, _ in cps] == [3, 7, 11]


def test_replay_no_tokens() -> None:
    assert replay_checkpoints([], ParagraphEnd()) == []


class CountingScorer(BaseScorer):
    """Deterministic fake: value grows with the answer's length; records every request."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.calls: list[tuple[str | None, CheckpointKind]] = []
        self.fail_on = fail_on

    async def ascore(self, question: str, answer: str | None, kind: CheckpointKind) -> Score:
        self.calls.append((answer, kind))
        if self.fail_on is not None and self.fail_on in question:
            raise ScoreReadoutError("fake scorer: no score tokens")
        base = {CheckpointKind.QUESTION: 0.3, CheckpointKind.PARTIAL: 0.4, CheckpointKind.FINAL: 0.5}[kind]
        return Score(value=min(1.0, base + len(answer or "") / 200), spread=0.1, mass=0.9)


@pytest.mark.asyncio
@pytest.mark.parametrize("strategy", [ParagraphEnd(min_tokens=2), Periodic(every=4), Entropy(1.5, min_gap=2)])
async def test_replay_matches_run_monitor(strategy: ParagraphEnd | Periodic | Entropy) -> None:
    """Replaying a finished answer gives the checkpoints the live monitor would have scored."""
    tokens = toks(ANSWER, flat_at=(3, 7, 11))
    monitor = RunMonitor("q?", CountingScorer(), strategy)
    for t in tokens:  # a real stream yields to the loop between tokens, so each score lands before the next
        monitor.feed(t)
        for _ in range(3):
            await asyncio.sleep(0)
    trace = await monitor.finish()
    assert "skipped" not in trace.meta
    live = [sc.checkpoint.n_tokens for sc in trace.checkpoints if sc.checkpoint.kind is CheckpointKind.PARTIAL]
    assert [n for n, _ in replay_checkpoints(tokens, strategy)] == live


# --------------------------------------------------------------------------- fakes for a whole question


class FakeGenerator:
    """Scripted generator: one greedy answer per question keyword, canned baseline replies."""

    def __init__(
        self, answers: dict[str, list[str]], *, fail_on: str | None = None, ptrue_error: Exception | None = None
    ) -> None:
        self.answers = answers
        self.fail_on = fail_on
        self.ptrue_error = ptrue_error
        self.streams: list[str] = []
        self.samples: list[tuple[str, int]] = []
        self.completions: list[list[Message]] = []

    def _answer(self, prompt: str) -> list[str]:
        return next(v for k, v in self.answers.items() if k in prompt)

    async def astream(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        seed: int | None = None,
        stats: StreamStats | None = None,
    ) -> AsyncIterator[TokenEvent]:
        prompt = messages[-1]["content"]
        self.streams.append(prompt)
        if self.fail_on is not None and self.fail_on in prompt:
            raise BackendConnectionError("fake generator: connection refused")
        texts = self._answer(prompt)[:max_tokens]
        for t in toks(texts, flat_at=(3,)):
            yield t
        if stats is not None:
            stats.finish_reason = "stop" if len(self._answer(prompt)) <= max_tokens else "length"

    async def sample_continuations(
        self,
        question: str,
        answer_prefix: str,
        *,
        n: int,
        max_tokens: int,
        temperature: float = 0.8,
        top_p: float = 0.95,
        seed: int | None = None,
    ) -> list[str]:
        self.samples.append((answer_prefix, n))
        if answer_prefix:  # look-ahead: one more paragraph
            return ["More text.\n"] * n
        return ["Answer: A", "Answer: B", "Answer: A", "Answer: C", "Answer: A"][:n]

    async def next_token_logprobs(self, messages: Sequence[Message], *, top_logprobs: int) -> list[tuple[str, float]]:
        if self.ptrue_error is not None:
            raise self.ptrue_error
        return [(" True", -0.2231435513), (" False", -1.6094379124)]  # 0.8 / 0.2

    async def complete(self, messages: Sequence[Message], *, max_tokens: int) -> str:
        self.completions.append(list(messages))
        return " 70%" if messages[-1]["role"] == "assistant" else "I am 70% sure."


def mc_record(i: int, gold: str = "A") -> QARecord:
    return QARecord(
        id=f"arc_easy/q{i}", task="arc_easy", question=f"Question number {i} about the sky?",
        answers=(gold, "blue" if gold == "A" else "green"), choices=("blue", "green", "red"), kind=AnswerKind.CHOICE,
    )  # fmt: skip


SPEC = TaskSpec("arc_easy")
CONFIG = EvalConfig(strategies=("paragraph:2", "periodic:4", "entropy:1.5"), sc_n=5, max_tokens=50)


@pytest.mark.asyncio
async def test_evaluate_question_scores_each_distinct_state_once() -> None:
    gen = FakeGenerator({"number 1": ANSWER})
    scorer = CountingScorer()
    rec = await evaluate_question(mc_record(1), SPEC, generator=gen, scorer=scorer, config=CONFIG)
    # paragraph: 5, 9; periodic:4: 4, 8; entropy (flat token 3, min_gap 8): none -> partial states 4, 5, 8, 9
    partials = sorted(len(a or "") for a, k in scorer.calls if k is CheckpointKind.PARTIAL)
    assert partials == sorted(len("".join(ANSWER[:n])) for n in (4, 5, 8, 9))
    assert len(scorer.calls) == 1 + 4 + 1 == len(set(scorer.calls))
    assert [k for _, k in scorer.calls].count(CheckpointKind.QUESTION) == 1
    assert [k for _, k in scorer.calls].count(CheckpointKind.FINAL) == 1
    assert rec.correct and rec.final == "A" and rec.n_tokens == len(ANSWER) and rec.finish_reason == "stop"
    assert rec.answer == "".join(ANSWER)

    para = rec.strategies["paragraph:2"]
    assert para.n_tokens == (0, 5, 9, 12)
    assert para.reasons[0] == "question only" and para.reasons[-1] == "full answer"
    assert para.raw[0] == pytest.approx(0.3) and para.raw[-1] == pytest.approx(rec.full_score)
    assert list(para.bci) == pytest.approx(refine(list(para.raw), alpha=CONFIG.alpha, window=CONFIG.window))
    assert para.at("p1") == para.raw[1] and para.at("pz1") == para.raw[2] and para.at("full") == para.raw[3]
    assert rec.strategies["periodic:4"].n_tokens == (0, 4, 8, 12)
    ent = rec.strategies["entropy:1.5"]
    assert ent.n_tokens == (0, 12) and ent.z == 1
    # no partial checkpoint: p(1) is the full answer and p(z-1) the question
    assert ent.at("p1") == ent.raw[-1] and ent.at("pz1") == ent.raw[0]


@pytest.mark.asyncio
async def test_evaluate_question_baselines() -> None:
    gen = FakeGenerator({"number 1": ANSWER})
    rec = await evaluate_question(mc_record(1), SPEC, generator=gen, scorer=CountingScorer(), config=CONFIG)
    assert set(rec.baselines) == set(BASELINES)
    assert rec.baselines["p_true"] == pytest.approx(0.8)
    assert rec.baselines["verbalized"] == pytest.approx(0.7)
    assert rec.verbalized_text == "Confidence: 70%"
    assert gen.completions[0][-1] == {"role": "assistant", "content": "Confidence:"}  # the reply is pre-filled
    assert rec.sc_finals == ("A", "B", "A", "C", "A")
    assert rec.baselines["self_consistency"] == pytest.approx(3 / 5)
    import math

    assert rec.baselines["first_prob"] == pytest.approx(math.exp(-0.2))
    assert all(rec.baselines[name] is not None for name in BASELINES)
    assert rec.baseline_errors == {}


@pytest.mark.asyncio
async def test_self_consistency_disabled_and_lookahead() -> None:
    config = EvalConfig(strategies=("paragraph:2", "entropy:1.5"), sc_n=0, lookahead_w=2, lookahead_d=1)
    gen = FakeGenerator({"number 1": ANSWER})
    rec = await evaluate_question(mc_record(1), SPEC, generator=gen, scorer=CountingScorer(), config=config)
    assert rec.baselines["self_consistency"] is None and "disabled" in rec.baseline_errors["self_consistency"]
    assert gen.samples == [("".join(ANSWER[:5]), 2)]  # one look-ahead request at paragraph's p(1), none for SC
    para = rec.strategies["paragraph:2"]
    assert para.lookahead is not None and len(para.lookahead_paths) == 2
    assert rec.strategies["entropy:1.5"].lookahead is None  # no partial checkpoint to look ahead from


@pytest.mark.asyncio
async def test_verbalized_plain_chat_turn() -> None:
    gen = FakeGenerator({"number 1": ANSWER})
    config = EvalConfig(strategies=("paragraph",), sc_n=0, verbalized_prefix="")
    rec = await evaluate_question(mc_record(1), SPEC, generator=gen, scorer=CountingScorer(), config=config)
    assert gen.completions[0][-1]["role"] == "user"
    assert rec.verbalized_text == "I am 70% sure." and rec.baselines["verbalized"] == pytest.approx(0.7)


@pytest.mark.asyncio
async def test_baseline_failures_recorded_or_retried() -> None:
    # a permanent problem (HTTP 400) leaves the baseline empty with its error; the rest is kept
    gen = FakeGenerator({"number 1": ANSWER}, ptrue_error=BackendHTTPError(400, "prompt too long", "http://x"))
    rec = await evaluate_question(mc_record(1), SPEC, generator=gen, scorer=CountingScorer(), config=CONFIG)
    assert rec.baselines["p_true"] is None and "HTTP 400" in rec.baseline_errors["p_true"]
    assert rec.baselines["verbalized"] is not None
    # a transient one (server down) fails the whole question, so the next run retries it
    gen = FakeGenerator({"number 1": ANSWER}, ptrue_error=BackendConnectionError("connection refused"))
    with pytest.raises(BackendConnectionError):
        await evaluate_question(mc_record(1), SPEC, generator=gen, scorer=CountingScorer(), config=CONFIG)


def test_config_validation() -> None:
    with pytest.raises(ConfigError, match="both"):
        EvalConfig(lookahead_w=4)
    with pytest.raises(ConfigError, match="repeat"):
        EvalConfig(strategies=("paragraph", "paragraph"))
    with pytest.raises(ConfigError, match="unknown checkpoint strategy"):
        EvalConfig(strategies=("sentences",))


def test_record_json_roundtrip() -> None:
    trace = StrategyTrace((0, 3, 5), ("question only", "x", "full answer"), (0.2, 0.4, 0.6), (0.3, 0.5, 0.6))
    rec = AnswerRecord(
        key="arc_easy:arc_easy/q1", task="arc_easy", record_id="arc_easy/q1", partition="test", question="q",
        answer="a b", correct=True, final="A", n_tokens=5, finish_reason="stop", tokens=("a", " b"),
        token_logprobs=(-0.1, None), states=(), strategies={"paragraph": trace},
        baselines=dict.fromkeys(BASELINES, 0.5),
    )  # fmt: skip
    assert AnswerRecord.from_json(rec.to_json()) == rec


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\u0085", "\x1c", "\r"])
def test_a_record_with_a_unicode_line_separator_reads_back(tmp_path: Path, separator: str) -> None:
    """json.dumps(ensure_ascii=False) leaves these unescaped; str.splitlines() split the record and lost it."""
    trace = StrategyTrace((0, 2), ("question only", "full answer"), (0.2, 0.6), (0.4, 0.6))
    rec = AnswerRecord(
        key="arc_easy:arc_easy/q1", task="arc_easy", record_id="arc_easy/q1", partition="test", question="q",
        answer=f"a{separator}b", correct=True, final="A", n_tokens=2, finish_reason="stop",
        tokens=("a", f"{separator}b"), token_logprobs=(-0.1, -0.2), states=(), strategies={"paragraph": trace},
        baselines=dict.fromkeys(BASELINES, 0.5),
    )  # fmt: skip
    path = tmp_path / "records-test.jsonl"
    path.write_text(rec.to_json() + "\n", encoding="utf-8", newline="")
    assert read_records(path) == [rec]


# --------------------------------------------------------------------------- resumable runs


@pytest.mark.asyncio
async def test_run_eval_resumes_and_skips_done(tmp_path: Path) -> None:
    out = tmp_path / "records-test.jsonl"
    questions = [(SPEC, mc_record(i, "A" if i % 2 else "B")) for i in range(1, 4)]
    answers = {f"number {i}": ANSWER for i in range(1, 4)}
    first = FakeGenerator(answers)
    report = await run_eval(questions[:2], out, generator=first, scorer=CountingScorer(), config=CONFIG)
    assert (report.evaluated, report.done_before, report.failed) == (2, 0, [])
    assert len(read_records(out)) == 2

    second = FakeGenerator(answers)
    seen: list[AnswerRecord | None] = []
    report = await run_eval(
        questions, out, generator=second, scorer=CountingScorer(), config=CONFIG, on_done=seen.append
    )
    assert (report.evaluated, report.done_before) == (1, 2)
    assert len(second.streams) == 1 and "number 3" in second.streams[0]  # only the new question was generated
    assert [r.key for r in read_records(out)] == [f"arc_easy:arc_easy/q{i}" for i in (1, 2, 3)]
    assert len(seen) == 1 and seen[0] is not None and seen[0].correct is True


@pytest.mark.asyncio
async def test_killed_run_torn_line_is_redone(tmp_path: Path) -> None:
    out = tmp_path / "records-test.jsonl"
    questions = [(SPEC, mc_record(i)) for i in (1, 2)]
    answers = {f"number {i}": ANSWER for i in (1, 2)}
    await run_eval(questions[:1], out, generator=FakeGenerator(answers), scorer=CountingScorer(), config=CONFIG)
    with out.open("a") as fh:
        fh.write('{"key": "arc_easy:arc_easy/q2", "task": "arc')  # killed mid-write
    gen = FakeGenerator(answers)
    report = await run_eval(questions, out, generator=gen, scorer=CountingScorer(), config=CONFIG)
    assert (report.evaluated, report.done_before) == (1, 1)
    assert [r.key for r in read_records(out)] == ["arc_easy:arc_easy/q1", "arc_easy:arc_easy/q2"]


@pytest.mark.asyncio
async def test_run_eval_refuses_other_settings(tmp_path: Path) -> None:
    out = tmp_path / "records-test.jsonl"
    questions = [(SPEC, mc_record(1))]
    gen = FakeGenerator({"number 1": ANSWER})
    await run_eval(questions, out, generator=gen, scorer=CountingScorer(), config=CONFIG, meta={"adapter": "/a"})
    with pytest.raises(ConfigError, match=r"max_tokens: 50 -> 99"):
        await run_eval(
            questions, out, generator=gen, scorer=CountingScorer(),
            config=EvalConfig(strategies=CONFIG.strategies, max_tokens=99), meta={"adapter": "/a"},
        )  # fmt: skip
    with pytest.raises(ConfigError, match="adapter"):
        await run_eval(questions, out, generator=gen, scorer=CountingScorer(), config=CONFIG, meta={"adapter": "/b"})
    meta = json.loads((tmp_path / "records-test.jsonl.meta.json").read_text())
    assert meta["max_tokens"] == 50 and meta["adapter"] == "/a"


@pytest.mark.asyncio
async def test_failed_questions_are_not_written(tmp_path: Path) -> None:
    out = tmp_path / "records-test.jsonl"
    questions = [(SPEC, mc_record(i)) for i in (1, 2, 3)]
    answers = {f"number {i}": ANSWER for i in (1, 2, 3)}
    gen = FakeGenerator(answers, fail_on="number 2")
    report = await run_eval(questions, out, generator=gen, scorer=CountingScorer(fail_on="number 3"), config=CONFIG)
    assert report.evaluated == 1
    failed = dict(report.failed)
    assert "BackendConnectionError" in failed["arc_easy:arc_easy/q2"]
    assert "ScoreReadoutError" in failed["arc_easy:arc_easy/q3"]
    assert [r.key for r in read_records(out)] == ["arc_easy:arc_easy/q1"]
