"""Unit tests for the choice-commit stage (finece_guard.data.choice_commit) and its wiring into
data construction and the evaluation harness, with a scripted committer (the real server's
structured-outputs call is tested in tests/integration/test_choice_commit_served.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from finece_guard.data.choice_commit import COMMIT_PREFIX, CommittingSampler, commit_answer, needs_commit
from finece_guard.data.construction import ConstructionConfig, TaskSpec, build_dataset, construct_question
from finece_guard.data.records import AnswerKind, QARecord
from finece_guard.errors import ConfigError
from finece_guard.evaluation.harness import evaluate_question
from finece_guard.evaluation.settings import EvalConfig
from finece_guard.types import CheckpointKind
from tests.unit.test_construction import BagOfWordsEmbedder, FakeSampler
from tests.unit.test_eval_harness import CountingScorer, FakeGenerator

UNREADABLE = "Air scatters short waves of light the most."


def mc(gold: str = "A") -> QARecord:
    return QARecord(
        id="arc_easy/q1", task="arc_easy", question="What colour is the sky?",
        answers=(gold, {"A": "blue", "B": "green", "C": "red"}[gold]), choices=("blue", "green", "red"),
        kind=AnswerKind.CHOICE,
    )  # fmt: skip


class Committer:
    """Scripted committer: always picks ``letter``; records every (question, answer, letters) it was asked."""

    def __init__(self, letter: str = "A") -> None:
        self.letter = letter
        self.calls: list[tuple[str, str, tuple[str, ...]]] = []

    async def commit_choice(self, question: str, answer: str, letters: Sequence[str]) -> str:
        self.calls.append((question, answer, tuple(letters)))
        return self.letter


@pytest.mark.asyncio
async def test_unreadable_answer_gets_the_committed_line() -> None:
    committer = Committer("A")
    out = await commit_answer(mc(), "Q?", UNREADABLE + "  \n", committer)
    assert out == UNREADABLE + COMMIT_PREFIX + "A"
    assert committer.calls == [("Q?", UNREADABLE + COMMIT_PREFIX, ("A", "B", "C"))]
    assert not needs_commit(mc(), out)


@pytest.mark.asyncio
async def test_readable_and_open_answers_are_left_alone_without_a_request() -> None:
    committer = Committer()
    assert await commit_answer(mc(), "Q?", "It is blue. Answer: B", committer) == "It is blue. Answer: B"
    open_record = QARecord("sciq/1", "sciq", "Which gas?", ("carbon dioxide",))
    assert await commit_answer(open_record, "Q?", UNREADABLE, committer) == UNREADABLE
    assert committer.calls == []


@pytest.mark.asyncio
async def test_committing_sampler_keeps_the_prefix_and_commits_each_sample() -> None:
    texts = [" and so on.", " Answer: C", "   "]
    sampler = FakeSampler(lambda q, p, i: texts[i])
    committing = CommittingSampler(sampler, Committer("B"), mc())
    out = await committing.sample_continuations("Q?", "Air scatters light", n=3, max_tokens=8)
    assert out == [" and so on." + COMMIT_PREFIX + "B", " Answer: C", COMMIT_PREFIX + "B"]
    assert sampler.calls[0].n == 3 and sampler.calls[0].max_tokens == 8


def test_construction_labels_the_committed_answers() -> None:
    """An unreadable sample counts as wrong without the stage, and by its committed letter with it."""
    record = mc("A")
    spec = TaskSpec("arc_easy")
    answers = [UNREADABLE, "Green. Answer: B"]

    State = tuple[CheckpointKind, str | None, float]

    async def build(config: ConstructionConfig, committer: Committer | None) -> list[State]:
        sampler = FakeSampler(lambda q, p, i: answers[i % 2])
        data = await construct_question(
            record, spec, sampler=sampler, embedder=BagOfWordsEmbedder(), config=config, committer=committer
        )
        return [(s.kind, s.answer, s.label) for s in data.states if s.level <= 0]

    plain = asyncio.run(build(ConstructionConfig(k=2, levels=0), None))
    committed = asyncio.run(build(ConstructionConfig(k=2, levels=0, commit_choices=True), Committer("A")))
    assert plain == [(CheckpointKind.QUESTION, None, 0.0), (CheckpointKind.FINAL, UNREADABLE, 0.0),
                     (CheckpointKind.FINAL, "Green. Answer: B", 0.0)]  # fmt: skip
    assert committed == [(CheckpointKind.QUESTION, None, 0.5),
                         (CheckpointKind.FINAL, UNREADABLE + COMMIT_PREFIX + "A", 1.0),
                         (CheckpointKind.FINAL, "Green. Answer: B", 0.0)]  # fmt: skip


def test_construction_without_a_committer_says_what_to_pass() -> None:
    with pytest.raises(ConfigError, match="committer"):
        asyncio.run(construct_question(
            mc(), TaskSpec("arc_easy"), sampler=FakeSampler(lambda q, p, i: UNREADABLE),
            embedder=BagOfWordsEmbedder(), config=ConstructionConfig(k=2, levels=0, commit_choices=True),
        ))  # fmt: skip


@pytest.mark.asyncio
async def test_build_without_a_committer_fails_before_any_question(tmp_path: Path) -> None:
    sampler = FakeSampler(lambda q, p, i: UNREADABLE)
    with pytest.raises(ConfigError, match="committer"):
        await build_dataset(
            [(TaskSpec("arc_easy"), mc())], tmp_path / "train.jsonl", sampler=sampler,
            embedder=BagOfWordsEmbedder(), config=ConstructionConfig(k=2, levels=0, commit_choices=True),
        )  # fmt: skip
    assert sampler.calls == [] and not (tmp_path / "train.jsonl").exists()


def test_meta_names_the_option_only_when_on() -> None:
    """Builds and evals started before the option existed resume: their settings files lack it."""
    assert "commit_choices" not in ConstructionConfig().to_meta()
    assert ConstructionConfig(commit_choices=True).to_meta()["commit_choices"] is True
    assert "commit_choices" not in EvalConfig().to_meta()
    assert EvalConfig(commit_choices=True).to_meta()["commit_choices"] is True


@pytest.mark.asyncio
async def test_build_dataset_passes_the_committer(tmp_path: Path) -> None:
    out = tmp_path / "train.jsonl"
    committer = Committer("A")
    report = await build_dataset(
        [(TaskSpec("arc_easy"), mc("A"))], out, sampler=FakeSampler(lambda q, p, i: UNREADABLE),
        embedder=BagOfWordsEmbedder(), config=ConstructionConfig(k=2, levels=0, commit_choices=True),
        committer=committer,
    )  # fmt: skip
    assert report.built == 1 and len(committer.calls) == 2
    assert '"label": 1.0' in out.read_text(encoding="utf-8")


class CommittingFakeGenerator(FakeGenerator):
    def __init__(self, answers: dict[str, list[str]], letter: str) -> None:
        super().__init__(answers)
        self.committer = Committer(letter)

    async def commit_choice(self, question: str, answer: str, letters: Sequence[str]) -> str:
        return await self.committer.commit_choice(question, answer, letters)

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
        if answer_prefix:
            return await super().sample_continuations(question, answer_prefix, n=n, max_tokens=max_tokens)
        return ["Hmm.", "Answer: B", "No idea."][:n]


@pytest.mark.asyncio
@pytest.mark.parametrize("commit", [False, True])
async def test_harness_judges_and_scores_the_committed_answer(commit: bool) -> None:
    free = ["The", " sky", " scatters", " light", "."]
    gen = CommittingFakeGenerator({"sky": free}, letter="A")
    scorer = CountingScorer()
    config = EvalConfig(strategies=("periodic:2",), sc_n=3, max_tokens=50, commit_choices=commit)
    rec = await evaluate_question(mc("A"), TaskSpec("arc_easy"), generator=gen, scorer=scorer, config=config)
    judged = "".join(free) + (COMMIT_PREFIX + "A" if commit else "")
    assert rec.answer == judged and rec.tokens == tuple(free)
    assert rec.correct is commit and rec.final == ("A" if commit else None)
    assert [a for a, k in scorer.calls if k is CheckpointKind.FINAL] == [judged]
    # self-consistency samples pass through the same stage: "Hmm." and "No idea." commit to A
    assert rec.sc_finals == (("A", "B", "A") if commit else (None, "B", None))
    assert len(gen.committer.calls) == (3 if commit else 0)
