"""Monte-Carlo confidence data (paper Alg. 1): accounting, labels, representatives, resumable output.

The sampler and embedder are fakes: these tests check Alg. 1's bookkeeping and labels, not a
server. The fake sampler is a deterministic function of (question, prefix, index) and records
every call; the fake embedder is a hashed bag of words (fragments sharing words are close).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from finece_guard.data import AnswerKind, QARecord, is_correct, load_task, partition_of
from finece_guard.data import construction as construction_module
from finece_guard.data.construction import (
    BuildReport,
    ConstructionConfig,
    QuestionData,
    TaskSpec,
    build_dataset,
    construct_question,
    read_dataset,
    select_questions,
)
from finece_guard.data.fragments import first_fragment
from finece_guard.errors import BackendError, ConfigError
from finece_guard.types import CheckpointKind

SCIQ = TaskSpec("sciq")
GOLD = "carbon dioxide"

# --------------------------------------------------------------------------- fakes


@dataclass(frozen=True)
class Call:
    question: str
    answer_prefix: str
    n: int
    max_tokens: int
    temperature: float
    top_p: float
    seed: int | None
    texts: tuple[str, ...]


Script = Callable[[str, str, int], str]  # (question, prefix, index) -> answer or continuation


class FakeSampler:
    """Deterministic scripted sampler that records every call (and what it returned)."""

    def __init__(
        self,
        script: Script,
        *,
        fail_for: Callable[[str, str], bool] | None = None,
        short_by: int = 0,
        gate: Callable[[str], asyncio.Event | None] | None = None,
    ) -> None:
        self.script = script
        self.fail_for = fail_for
        self.short_by = short_by
        self.gate = gate
        self.calls: list[Call] = []
        self.cancelled: list[str] = []

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
        event = self.gate(question) if self.gate is not None else None
        try:
            await (event.wait() if event is not None else asyncio.sleep(0))
        except asyncio.CancelledError:
            self.cancelled.append(question)
            raise
        if self.fail_for is not None and self.fail_for(question, answer_prefix):
            raise BackendError("HTTP 500 from fake server")
        texts = [self.script(question, answer_prefix, i) for i in range(n - self.short_by)]
        self.calls.append(Call(question, answer_prefix, n, max_tokens, temperature, top_p, seed, tuple(texts)))
        return texts

    def calls_for(self, question: str) -> list[Call]:
        return [c for c in self.calls if c.question == question]


class BagOfWordsEmbedder:
    """Hashed bag of lower-case words, unit norm; records every batch it embeds."""

    def __init__(self, dim: int = 1024, fail_on: str | None = None) -> None:
        self.dim = dim
        self.fail_on = fail_on
        self.calls: list[list[str]] = []

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                out[row, int.from_bytes(hashlib.sha256(word.encode()).digest()[:4], "big") % self.dim] += 1.0
            if not out[row].any():
                out[row, 0] = 1.0
        normed: NDArray[np.float32] = out / np.linalg.norm(out, axis=1, keepdims=True)
        return normed

    async def aencode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        self.calls.append(list(texts))
        if self.fail_on is not None and any(self.fail_on in t for t in texts):
            raise RuntimeError("embedder crashed")
        await asyncio.sleep(0)
        return self.encode(texts)


def cosine_distance(embedder: BagOfWordsEmbedder, a: str, b: str) -> float:
    emb = embedder.encode([a, b]).astype(np.float64)
    return float(1.0 - emb[0] @ emb[1])


def sciq(rid: str, question: str = "Which gas do plants absorb from the air?") -> QARecord:
    return QARecord(f"sciq/{rid}", "sciq", question, (GOLD,), context="Plants absorb carbon dioxide.")


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def construct(record: QARecord, sampler: FakeSampler, config: ConstructionConfig, **kw: Any) -> QuestionData:
    embedder: BagOfWordsEmbedder = kw.pop("embedder", BagOfWordsEmbedder())
    spec: TaskSpec = kw.pop("spec", SCIQ)
    data: QuestionData = run(construct_question(record, spec, sampler=sampler, embedder=embedder, config=config))
    return data


# --------------------------------------------------------------------------- the hand-made scenario

# k = 4 answers; first fragments: three "Plants take in a gas ..." variants and one "Leaves ..."
ANSWERS = (
    "Plants take in a gas from the air today. The answer is carbon dioxide.",  # correct
    "Plants take in a gas from the air. The answer is oxygen.",  # wrong
    "Leaves absorb sunlight through tiny pores. The answer is carbon dioxide.",  # correct
    "Plants take in a gas from air. The answer is nitrogen.",  # wrong
)
PLANT_FRAGMENTS = ("Plants take in a gas from the air today.", "Plants take in a gas from the air.",
                   "Plants take in a gas from air.")  # fmt: skip
PLANT_MEDOID = "Plants take in a gas from the air."  # in the middle: one word more / less than the others
LEAF_FRAGMENT = "Leaves absorb sunlight through tiny pores."
PLANT_CONTINUATIONS = (
    " It turns this gas into sugar for food. The answer is carbon dioxide.",
    " It turns this gas into sugar. The answer is carbon dioxide.",
    " It turns the gas into sugar. The answer is carbon dioxide.",
    " Animals breathe out that gas. The answer is oxygen.",
)
PLANT_NEXT = PLANT_MEDOID + " It turns this gas into sugar."
LEAF_CONTINUATIONS = (" The answer is oxygen.", " The answer is carbon dioxide.", " The answer is oxygen.",
                      " The answer is oxygen.")  # fmt: skip
DEEP_CONTINUATIONS = (" Sugar feeds the plant as it grows. The answer is carbon dioxide.",
                      " Sugar feeds the plant. The answer is nitrogen.")  # fmt: skip


def scenario(question: str, prefix: str, i: int) -> str:
    if not prefix:
        return ANSWERS[i % len(ANSWERS)]
    if "sugar" in prefix or "Sugar" in prefix:
        return DEEP_CONTINUATIONS[i % len(DEEP_CONTINUATIONS)]
    if prefix.startswith("Plants"):
        return PLANT_CONTINUATIONS[i % len(PLANT_CONTINUATIONS)]
    return LEAF_CONTINUATIONS[i % len(LEAF_CONTINUATIONS)]


def test_scenario_premises() -> None:
    """The fixture means what the other tests assume (so they fail for the right reason)."""
    emb = BagOfWordsEmbedder()
    record = sciq("q1")
    assert [is_correct(record, a) for a in ANSWERS] == [True, False, True, False]
    assert [first_fragment(a) for a in ANSWERS] == [PLANT_FRAGMENTS[0], PLANT_FRAGMENTS[1], LEAF_FRAGMENT,
                                                    PLANT_FRAGMENTS[2]]  # fmt: skip
    for a in PLANT_FRAGMENTS:
        assert cosine_distance(emb, a, LEAF_FRAGMENT) > 0.9
        for b in PLANT_FRAGMENTS:
            assert cosine_distance(emb, a, b) < 0.15
    # the medoid is neither the first plant fragment in sample order nor the last
    assert PLANT_MEDOID not in (PLANT_FRAGMENTS[0], PLANT_FRAGMENTS[2])


def test_labels_question_final_and_partial() -> None:
    record = sciq("q1")
    sampler = FakeSampler(scenario)
    config = ConstructionConfig(k=4, levels=2, threshold=0.3, max_clusters=None)
    data = construct(record, sampler, config)

    question = data.states[0]
    assert (question.kind, question.answer, question.level, question.n_samples) == (
        CheckpointKind.QUESTION, None, 0, 4,
    )  # fmt: skip
    assert question.label == 0.5  # 2 of the 4 answers are correct

    finals = [s for s in data.states if s.kind is CheckpointKind.FINAL]
    assert [s.answer for s in finals] == list(ANSWERS)
    assert [s.label for s in finals] == [1.0, 0.0, 1.0, 0.0]
    assert all(s.level == -1 and s.n_samples == 1 for s in finals)

    partial = {(s.level, s.answer): s.label for s in data.states if s.kind is CheckpointKind.PARTIAL}
    assert partial == {
        (1, PLANT_MEDOID): 0.75,  # 3 of 4 completions say carbon dioxide
        (1, LEAF_FRAGMENT): 0.25,  # 1 of 4
        (2, PLANT_NEXT): 0.5,  # the deep continuations alternate correct / wrong
    }
    assert all(s.n_samples == 4 for s in data.states if s.kind is CheckpointKind.PARTIAL)


def test_partial_labels_are_the_fraction_of_prefix_plus_completion_correct() -> None:
    record = sciq("q1")
    sampler = FakeSampler(scenario)
    data = construct(record, sampler, ConstructionConfig(k=4, levels=3, threshold=0.3, max_clusters=None))
    partials = [s for s in data.states if s.kind is CheckpointKind.PARTIAL]
    assert len(partials) >= 3
    for state in partials:
        assert state.answer is not None
        (call,) = [c for c in sampler.calls if c.answer_prefix == state.answer]
        expected = sum(is_correct(record, state.answer + t) for t in call.texts) / len(call.texts)
        assert state.label == expected


def test_partial_label_counts_the_answer_already_in_the_prefix() -> None:
    # the prefix states the answer; the completions only explain, so they are wrong on their own
    record = sciq("q1")
    answer = "The answer is carbon dioxide. Plants absorb it from the air."
    completion = " Plants absorb it from the air. It is used in photosynthesis."

    def script(question: str, prefix: str, i: int) -> str:
        return completion if prefix else answer

    data = construct(record, FakeSampler(script), ConstructionConfig(k=3, levels=1))
    (partial,) = [s for s in data.states if s.kind is CheckpointKind.PARTIAL]
    assert partial.answer == "The answer is carbon dioxide."
    assert not is_correct(record, completion)
    assert partial.label == 1.0


def test_labels_use_the_records_checker() -> None:
    record = QARecord("csqa/c1", "csqa", "Which gas do plants absorb?", ("B", GOLD),
                      ("oxygen", GOLD, "nitrogen"), kind=AnswerKind.CHOICE)  # fmt: skip
    answers = ["Plants absorb carbon dioxide. Answer: B", "Answer: A", "They need it for sugar. Answer: C",
               "The answer is B) carbon dioxide.", "It is carbon dioxide.\nAnswer: B"]  # fmt: skip
    data = construct(record, FakeSampler(lambda q, p, i: answers[i]), ConstructionConfig(k=5, levels=0),
                     spec=TaskSpec("csqa"))  # fmt: skip
    assert data.states[0].label == pytest.approx(3 / 5)
    assert [s.label for s in data.states[1:]] == [1.0, 0.0, 0.0, 1.0, 1.0]
    assert data.key == "csqa:csqa/c1"
    assert data.question == record.prompt()


def test_representative_is_the_medoid_of_each_cluster() -> None:
    sampler = FakeSampler(scenario)
    embedder = BagOfWordsEmbedder()
    data = construct(sciq("q1"), sampler, ConstructionConfig(k=4, levels=1, threshold=0.3, max_clusters=None),
                     embedder=embedder)  # fmt: skip
    # all distinct first fragments are embedded once, in sample order
    assert embedder.calls == [[PLANT_FRAGMENTS[0], PLANT_FRAGMENTS[1], LEAF_FRAGMENT, PLANT_FRAGMENTS[2]]]
    assert data.clusters == 2
    level1 = [s.answer for s in data.states if s.kind is CheckpointKind.PARTIAL and s.level == 1]
    assert level1 == [PLANT_MEDOID, LEAF_FRAGMENT]
    assert [c.answer_prefix for c in sampler.calls[1:]] == [PLANT_MEDOID, LEAF_FRAGMENT]


def test_next_level_state_is_the_semantic_centroid_of_the_completions() -> None:
    sampler = FakeSampler(scenario)
    embedder = BagOfWordsEmbedder()
    data = construct(sciq("q1"), sampler, ConstructionConfig(k=4, levels=2, threshold=0.3, max_clusters=None),
                     embedder=embedder)  # fmt: skip
    candidates = [PLANT_MEDOID + c.split(" The answer")[0] for c in PLANT_CONTINUATIONS]
    assert candidates[1] == PLANT_NEXT != candidates[0]  # premise: not the first candidate
    assert candidates in embedder.calls
    level2 = [s.answer for s in data.states if s.kind is CheckpointKind.PARTIAL and s.level == 2]
    assert level2 == [PLANT_NEXT]


def test_fragments_meaning_the_same_share_one_representative() -> None:
    # every answer opens with a rewording of one sentence: one cluster, one branch per level
    openings = ["Plants take in carbon dioxide from the air.", "Plants take in the carbon dioxide from air.",
                "Plants take carbon dioxide in from the air.", "Plants take in carbon dioxide from air."]  # fmt: skip
    sampler = FakeSampler(lambda q, p, i: f"{openings[i % 4]} The answer is carbon dioxide." if not p else
                          " It is used to make sugar. The answer is carbon dioxide.")  # fmt: skip
    data = construct(sciq("q1"), sampler, ConstructionConfig(k=8, levels=2, threshold=0.3, max_clusters=None))
    assert data.clusters == 1
    assert data.reps_per_level == (1, 1)
    level1 = [s.answer for s in data.states if s.level == 1]
    assert len(level1) == 1 and level1[0] in openings


def test_identical_fragments_are_embedded_once() -> None:
    embedder = BagOfWordsEmbedder()
    sampler = FakeSampler(lambda q, p, i: "Plants take in a gas. The answer is carbon dioxide." if not p else "")
    data = construct(sciq("q1"), sampler, ConstructionConfig(k=5, levels=1), embedder=embedder)
    assert embedder.calls == [["Plants take in a gas."]]
    assert data.clusters == 1


# --------------------------------------------------------------------------- generation accounting


def wide_script(question: str, prefix: str, i: int) -> str:
    """Answers in 4 topics (so threshold clustering leaves 4 clusters); every text continues."""
    topics = ["Plants take in a gas from the air.", "Leaves absorb sunlight through tiny pores.",
              "Roots drink water from the soil.", "Animals exhale what trees need."]  # fmt: skip
    if not prefix:
        return f"{topics[i % 4]} The answer is carbon dioxide."
    return f" Step number {prefix.count('Step') + 1} happens next. Then the answer is carbon dioxide."


@pytest.mark.parametrize(("k", "levels", "max_clusters", "m"), [(4, 1, None, 4), (4, 3, None, 4), (8, 3, 3, 3),
                                                                 (6, 2, 2, 2), (5, 4, 1, 1)])  # fmt: skip
def test_generation_count_when_every_branch_continues(k: int, levels: int, max_clusters: int | None, m: int) -> None:
    sampler = FakeSampler(wide_script)
    data = construct(sciq("q1"), sampler, ConstructionConfig(k=k, levels=levels, max_clusters=max_clusters))
    assert data.clusters == m
    assert data.reps_per_level == (m,) * levels
    assert data.generations == data.expected_generations == k * (1 + m * levels) == data.linear_bound
    assert data.full_tree == sum(k**i for i in range(1, levels + 2))
    # the fake saw exactly what was counted: one call of n=k per state sampled from
    assert len(sampler.calls) == 1 + m * levels
    assert sum(c.n for c in sampler.calls) == data.generations
    assert all(c.n == k for c in sampler.calls)
    partial = [s for s in data.states if s.kind is CheckpointKind.PARTIAL]
    assert len(partial) == m * levels
    assert [c.answer_prefix for c in sampler.calls[1:]] == [s.answer for s in partial]


def test_linear_cost_is_far_below_the_full_tree_for_realistic_settings() -> None:
    data = construct(sciq("q1"), FakeSampler(wide_script), ConstructionConfig(k=30, levels=3, max_clusters=3))
    assert data.generations == 30 * (1 + 3 * 3) == 300
    assert data.full_tree == 30 + 30**2 + 30**3 + 30**4
    assert data.generations * 1000 < data.full_tree


def test_a_branch_that_ends_early_costs_less_than_the_bound() -> None:
    sampler = FakeSampler(scenario)
    data = construct(sciq("q1"), sampler, ConstructionConfig(k=4, levels=3, threshold=0.3, max_clusters=None))
    # the leaf branch's completions end without another boundary: it stops after level 1
    assert data.clusters == 2
    assert data.reps_per_level == (2, 1, 1)
    assert data.generations == data.expected_generations == 4 * (1 + 4) == 20
    assert data.generations < data.linear_bound == 4 * (1 + 2 * 3)
    assert len(sampler.calls) == 5
    assert sum(c.n for c in sampler.calls) == data.generations
    assert [s.level for s in data.states if s.kind is CheckpointKind.PARTIAL] == [1, 1, 2, 3]


def test_sampling_settings_and_seeds_reach_the_sampler() -> None:
    config = ConstructionConfig(k=4, levels=2, threshold=0.3, max_clusters=None, temperature=1.1, top_p=0.9,
                                max_tokens=77, seed=5)  # fmt: skip
    first, again, other_seed = FakeSampler(scenario), FakeSampler(scenario), FakeSampler(scenario)
    a = construct(sciq("q1"), first, config)
    b = construct(sciq("q1"), again, config)
    construct(sciq("q1"), other_seed, replace(config, seed=6))
    other_question = FakeSampler(scenario)
    construct(sciq("q2"), other_question, config)
    assert {(c.max_tokens, c.temperature, c.top_p) for c in first.calls} == {(77, 1.1, 0.9)}
    seeds = [c.seed for c in first.calls]
    assert None not in seeds and len(set(seeds)) == len(seeds)  # one seed per request
    assert seeds == [c.seed for c in again.calls]  # reproducible
    assert a.states == b.states and a.generations == b.generations
    assert not set(seeds) & {c.seed for c in other_seed.calls}
    assert not set(seeds) & {c.seed for c in other_question.calls}
    assert all(c.question == sciq("q1").prompt() for c in first.calls)


def test_passage_spec_puts_the_passage_in_the_prompt() -> None:
    sampler = FakeSampler(scenario)
    data = construct(sciq("q1"), sampler, ConstructionConfig(k=4, levels=0), spec=TaskSpec("sciq", True))
    assert data.key == "sciq+passage:sciq/q1" and data.task == "sciq+passage"
    assert data.question == sciq("q1").prompt(with_context=True)
    assert "Plants absorb carbon dioxide." in sampler.calls[0].question


def test_levels_zero_samples_answers_only() -> None:
    sampler = FakeSampler(scenario)
    embedder = BagOfWordsEmbedder()
    data = construct(sciq("q1"), sampler, ConstructionConfig(k=4, levels=0), embedder=embedder)
    assert [s.kind for s in data.states] == [CheckpointKind.QUESTION] + [CheckpointKind.FINAL] * 4
    assert (data.clusters, data.reps_per_level, data.generations) == (0, (), 4)
    assert data.generations == data.expected_generations == data.linear_bound == 4
    assert len(sampler.calls) == 1 and embedder.calls == []


def test_answers_without_a_boundary_give_no_partial_states() -> None:
    sampler = FakeSampler(lambda q, p, i: ["Carbon dioxide.", "Oxygen, surely.", "CO2"][i % 3])
    embedder = BagOfWordsEmbedder()
    data = construct(sciq("q1"), sampler, ConstructionConfig(k=6, levels=2), embedder=embedder)
    assert [s.kind for s in data.states] == [CheckpointKind.QUESTION] + [CheckpointKind.FINAL] * 6
    assert (data.clusters, data.reps_per_level, data.generations) == (0, (), 6)
    assert data.states[0].label == pytest.approx(2 / 6)  # "Carbon dioxide." twice
    assert len(sampler.calls) == 1 and embedder.calls == []


def test_a_sampler_returning_too_few_texts_is_a_backend_error() -> None:
    with pytest.raises(BackendError, match="returned 3 texts for n=4"):
        construct(sciq("q1"), FakeSampler(scenario, short_by=1), ConstructionConfig(k=4, levels=1))


# --------------------------------------------------------------------------- config and specs


BAD_SETTINGS: list[dict[str, Any]] = [{"k": 0}, {"k": -3}, {"levels": -1}, {"temperature": 0.0},
                                      {"temperature": 2.5}, {"max_tokens": 0}, {"max_clusters": 0},
                                      {"threshold": -0.01}, {"threshold": 2.01}]  # fmt: skip


@pytest.mark.parametrize("kwargs", BAD_SETTINGS)
def test_construction_config_rejects_bad_settings(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=next(iter(kwargs)).replace("levels", r"levels \(T\)")):
        ConstructionConfig(**kwargs)


def test_construction_config_accepts_edges() -> None:
    edges: list[dict[str, Any]] = [{"k": 1}, {"levels": 0}, {"temperature": 2.0}, {"max_clusters": None},
                                   {"max_clusters": 1}, {"threshold": 0.0}, {"threshold": 2.0},
                                   {"max_tokens": 1}]  # fmt: skip
    for kwargs in edges:
        config = ConstructionConfig(**kwargs)
        key, value = next(iter(kwargs.items()))
        assert getattr(config, key) == value


def test_task_spec_parse() -> None:
    assert TaskSpec.parse("sciq") == TaskSpec("sciq", False)
    assert TaskSpec.parse(" sciq+passage ") == TaskSpec("sciq", True)
    assert TaskSpec.parse("arc_easy") == TaskSpec("arc_easy")
    for spec in ["sciq", "sciq+passage", "gsm8k", "sciq_mc+passage"]:
        assert str(TaskSpec.parse(spec)) == spec


@pytest.mark.parametrize("spec", ["squad", "squad+passage", "+passage", "", "sciq+context", "SCIQ"])
def test_task_spec_unknown_task(spec: str) -> None:
    with pytest.raises(ConfigError, match="unknown task") as info:
        TaskSpec.parse(spec)
    assert "sciq+passage" in str(info.value)


def test_question_data_json_round_trip() -> None:
    weird = "Plants take in a gas \u2028from the air \x85today, é — ok. The answer is carbon dioxide."

    def script(question: str, prefix: str, i: int) -> str:
        return scenario(question, prefix, i) if i % 2 else weird

    data = construct(sciq("q1"), FakeSampler(script), ConstructionConfig(k=4, levels=2, max_clusters=None))
    data = replace(data, meta={"note": "x", "n": [1, 2]})
    line = data.to_json()
    assert "\n" not in line
    back = QuestionData.from_json(line)
    assert back == data
    assert isinstance(back.states, tuple) and isinstance(back.reps_per_level, tuple)
    assert all(isinstance(s.kind, CheckpointKind) for s in back.states)
    assert json.loads(line)["states"][0]["kind"] == "question"


# --------------------------------------------------------------------------- select_questions


def test_select_questions_with_the_real_loaders() -> None:
    specs = [TaskSpec("arc_easy"), TaskSpec("sciq", True)]
    small = select_questions(specs, partition="train", limit=3, seed=0)
    large = select_questions(specs, partition="train", limit=5, seed=0)
    assert small == select_questions(specs, partition="train", limit=3, seed=0)  # deterministic
    assert [s for s, _ in large] == specs * 5  # interleaved
    assert large[: len(small)] == small  # a larger limit extends a smaller one
    assert all(partition_of(r.id) == "train" and r.task == s.task for s, r in large)
    assert all(r.context for s, r in large if s.with_context)
    assert len({r.id for _, r in large}) == len(large)
    assert select_questions(specs, partition="train", limit=5, seed=1) != large
    # a seeded shuffle, not the file order
    first_train = load_task("arc_easy", partition="train", limit=5)
    assert [r for s, r in large if s.task == "arc_easy"] != first_train


def test_select_questions_without_limit_takes_the_whole_partition() -> None:
    everything = select_questions([TaskSpec("arc_challenge")], partition="dev", limit=None, seed=3)
    assert sorted(r.id for _, r in everything) == sorted(r.id for r in load_task("arc_challenge", partition="dev"))


def test_select_questions_interleaves_uneven_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = {"sciq": [sciq(f"s{i}") for i in range(4)], "gsm8k": [
        QARecord("gsm8k/1", "gsm8k", "1+1?", ("2",), kind=AnswerKind.NUMERIC)]}  # fmt: skip

    def load(task: str, *, partition: str | None = None) -> list[QARecord]:
        return list(fake[task])

    monkeypatch.setattr(construction_module, "load_task", load)
    got = select_questions([TaskSpec("gsm8k"), TaskSpec("sciq")], partition="train", limit=None, seed=0)
    assert [s.task for s, _ in got] == ["gsm8k", "sciq", "sciq", "sciq", "sciq"]
    assert sorted(r.id for _, r in got[1:]) == [f"sciq/s{i}" for i in range(4)]
    with pytest.raises(ConfigError, match="no passages"):
        select_questions([TaskSpec("gsm8k", True)], partition="train", limit=None, seed=0)
    assert select_questions([TaskSpec("sciq")], partition="train", limit=0, seed=0) == []


# --------------------------------------------------------------------------- build_dataset


def questions(n: int) -> list[tuple[TaskSpec, QARecord]]:
    # a non-ASCII question (3-byte UTF-8 dash) so a torn line can end inside a character
    return [(SCIQ, sciq(f"q{i}", f"Which gas — the one in air — do plants absorb? ({i})")) for i in range(n)]


CONFIG = ConstructionConfig(k=4, levels=2, threshold=0.3, max_clusters=None)


def build(out: Path, qs: Sequence[tuple[TaskSpec, QARecord]], sampler: FakeSampler | None = None,
          config: ConstructionConfig = CONFIG, **kw: Any) -> BuildReport:  # fmt: skip
    report: BuildReport = run(build_dataset(
        qs, out, sampler=sampler or FakeSampler(scenario), embedder=kw.pop("embedder", BagOfWordsEmbedder()),
        config=config, **kw,
    ))  # fmt: skip
    return report


def keys_in(out: Path) -> list[str]:
    """Keys of every line; fails if any line does not parse or the file does not end a line."""
    raw = out.read_bytes()
    assert raw == b"" or raw.endswith(b"\n")
    return [json.loads(line)["key"] for line in raw.decode("utf-8").split("\n") if line]


def test_build_writes_one_line_per_question(tmp_path: Path) -> None:
    out = tmp_path / "data" / "mc.jsonl"
    out.parent.mkdir()
    qs = questions(3)
    report = build(out, qs, meta={"partition": "train"})
    assert (report.built, report.done_before, report.failed) == (3, 0, [])
    assert keys_in(out) == [f"sciq:{r.id}" for _, r in qs]  # concurrency 1: in order
    data = read_dataset([out])
    assert report.generations == sum(d.generations for d in data) == 3 * 4 * (1 + 3)
    meta = json.loads((tmp_path / "data" / "mc.jsonl.meta.json").read_text())
    assert meta["k"] == 4 and meta["levels"] == 2 and meta["partition"] == "train"


def test_build_resumes_skipping_finished_questions(tmp_path: Path) -> None:
    out = tmp_path / "mc.jsonl"
    qs = questions(4)
    build(out, qs[:2])
    before = out.read_bytes()
    sampler = FakeSampler(scenario)
    report = build(out, qs, sampler)
    assert (report.done_before, report.built) == (2, 2)
    assert {c.question for c in sampler.calls} == {r.prompt() for _, r in qs[2:]}
    assert out.read_bytes().startswith(before)
    idle = FakeSampler(scenario)
    again = build(out, qs, idle)
    assert (again.done_before, again.built, again.generations) == (4, 0, 0)
    assert idle.calls == []
    assert Counter(keys_in(out)) == Counter(f"sciq:{r.id}" for _, r in qs)


def test_build_refuses_other_settings(tmp_path: Path) -> None:
    out = tmp_path / "mc.jsonl"
    qs = questions(2)
    build(out, qs[:1], meta={"generator": "a"})
    with pytest.raises(ConfigError, match="k: 4 -> 5"):
        build(out, qs, config=replace(CONFIG, k=5), meta={"generator": "a"})
    with pytest.raises(ConfigError, match="generator"):
        build(out, qs, meta={"generator": "b"})
    assert keys_in(out) == ["sciq:sciq/q0"]
    assert build(out, qs, meta={"generator": "a"}).built == 1


def test_settings_may_change_while_the_output_is_empty(tmp_path: Path) -> None:
    out = tmp_path / "mc.jsonl"
    qs = questions(2)
    failing = FakeSampler(scenario, fail_for=lambda q, p: True)
    assert len(build(out, qs, failing).failed) == 2
    assert out.read_bytes() == b""
    assert build(out, qs, config=replace(CONFIG, k=5)).built == 2


def test_a_failing_question_is_reported_and_the_others_written(tmp_path: Path) -> None:
    out = tmp_path / "mc.jsonl"
    qs = questions(3)
    bad = qs[1][1].prompt()
    sampler = FakeSampler(scenario, fail_for=lambda q, p: q == bad and bool(p))  # fails at level 1
    seen: list[QuestionData | None] = []

    async def on_done(data: QuestionData | None) -> None:
        seen.append(data)

    report = build(out, qs, sampler, on_done=on_done)
    assert report.built == 2
    assert report.failed == [("sciq:sciq/q1", "BackendError: HTTP 500 from fake server")]
    assert keys_in(out) == ["sciq:sciq/q0", "sciq:sciq/q2"]
    assert len(seen) == 3 and seen.count(None) == 1
    assert report.generations == sum(d.generations for d in seen if d is not None)
    retry = build(out, qs)
    assert (retry.done_before, retry.built, retry.failed) == (2, 1, [])
    assert sorted(keys_in(out)) == [f"sciq:sciq/q{i}" for i in range(3)]


def test_a_short_sampler_reply_fails_that_question_only(tmp_path: Path) -> None:
    out = tmp_path / "mc.jsonl"
    report = build(out, questions(2), FakeSampler(scenario, short_by=1))
    assert report.built == 0 and [k for k, _ in report.failed] == ["sciq:sciq/q0", "sciq:sciq/q1"]
    assert all("returned 3 texts" in msg for _, msg in report.failed)


@pytest.mark.parametrize("cut", ["half", "inside-a-character", "one-byte"])
def test_resume_after_an_interruption_mid_write(tmp_path: Path, cut: str) -> None:
    out = tmp_path / "mc.jsonl"
    qs = questions(4)
    build(out, qs[:2])
    # the killed run was writing q2's line: only part of it reached the file, without the newline
    line = construct(qs[2][1], FakeSampler(scenario), CONFIG).to_json().encode()
    dash = "—".encode()
    at = {"half": len(line) // 2, "inside-a-character": line.index(dash) + 1, "one-byte": 1}[cut]
    with out.open("ab") as handle:
        handle.write(line[:at])
    report = build(out, qs)
    assert (report.done_before, report.built) == (2, 2)
    keys = keys_in(out)  # every line parses, the file ends a line
    assert Counter(keys) == Counter(f"sciq:{r.id}" for _, r in qs)
    assert {q.key for q in read_dataset([out])} == set(keys)
    assert len(read_dataset([out])) == 4


def test_resume_when_the_file_is_only_a_torn_line(tmp_path: Path) -> None:
    out = tmp_path / "mc.jsonl"
    qs = questions(2)
    build(out, qs[:1])
    out.write_bytes(out.read_bytes()[:40])  # not even one whole line
    report = build(out, qs)
    assert (report.done_before, report.built) == (0, 2)
    assert keys_in(out) == ["sciq:sciq/q0", "sciq:sciq/q1"]


def test_a_whole_last_line_without_its_newline_is_kept(tmp_path: Path) -> None:
    out = tmp_path / "mc.jsonl"
    qs = questions(2)
    build(out, qs[:1])
    out.write_bytes(out.read_bytes().rstrip(b"\n"))
    sampler = FakeSampler(scenario)
    report = build(out, qs, sampler)
    assert (report.done_before, report.built) == (1, 1)
    assert {c.question for c in sampler.calls} == {qs[1][1].prompt()}
    assert keys_in(out) == ["sciq:sciq/q0", "sciq:sciq/q1"]


def test_read_dataset_ignores_a_torn_line_and_keeps_line_separator_characters(tmp_path: Path) -> None:
    out = tmp_path / "mc.jsonl"
    weird = "Plants take in a gas \u2028from the air \x85today. The answer is carbon dioxide."
    sampler = FakeSampler(lambda q, p, i: weird if not p else " It is used to make sugar. Yes, carbon dioxide.")
    build(out, questions(1), sampler)
    assert [s.answer for s in read_dataset([out])[0].states][1] == weird
    again = build(out, questions(1))
    assert (again.done_before, again.built) == (1, 0)
    with out.open("ab") as handle:
        handle.write('{"key": "sciq:sciq/q9", "states": [{"answer": "—'.encode()[:-1])
    assert [q.key for q in read_dataset([out])] == ["sciq:sciq/q0"]
    with pytest.raises(ConfigError, match="does not exist"):
        read_dataset([tmp_path / "missing.jsonl"])


def test_build_with_concurrency_writes_whole_lines(tmp_path: Path) -> None:
    out = tmp_path / "mc.jsonl"
    qs = questions(7)
    report = build(out, qs, concurrency=3)
    assert report.built == 7
    assert sorted(keys_in(out)) == sorted(f"sciq:{r.id}" for _, r in qs)
    with pytest.raises(ConfigError, match="concurrency"):
        build(out, qs, concurrency=0)


def test_an_unexpected_error_leaves_no_question_running(tmp_path: Path) -> None:
    out = tmp_path / "mc.jsonl"
    qs = questions(2)
    slow_question = qs[1][1].prompt()

    async def main() -> FakeSampler:
        gate = asyncio.Event()
        sampler = FakeSampler(scenario, gate=lambda q: gate if q == slow_question else None)
        # q0's fragments crash the embedder (not a FineCEError) while q1 waits on its sampler
        embedder = BagOfWordsEmbedder(fail_on="Plants")
        with pytest.raises(RuntimeError, match="embedder crashed"):
            await build_dataset(qs, out, sampler=sampler, embedder=embedder, config=CONFIG, concurrency=2)
        assert sampler.cancelled == [slow_question]  # q1 was stopped before build_dataset returned
        gate.set()
        await asyncio.sleep(0.05)
        return sampler

    sampler = run(main())
    assert {c.question for c in sampler.calls} == {qs[0][1].prompt()}
    assert out.read_bytes() == b""


def test_a_passage_spec_keeps_only_records_with_a_passage_and_refuses_a_task_without_any() -> None:
    shown = TaskSpec("sciq", True).records("dev")
    assert shown and all(r.context for r in shown)
    assert len(shown) < len(TaskSpec("sciq").records("dev"))  # some SciQ rows have no passage
    with pytest.raises(ConfigError, match="has no passages; drop '\\+passage'"):
        TaskSpec("arc_easy", True).records("dev")
