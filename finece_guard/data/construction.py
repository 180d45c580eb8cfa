"""Monte-Carlo confidence data (paper Alg. 1): labelled question, partial and complete states.

For each question (its prompt exactly as the generator sees it):

1. sample k answers at high temperature; the question's label is the fraction correct (eq. 2),
   and every complete answer is a state labelled 1 or 0 (Alg. 1 lines 22-26);
2. cut each answer at its first boundary, embed the fragments (offline MiniLM), cluster them
   (cosine distance, average linkage, threshold; :mod:`finece_guard.data.fragments`) and keep one
   representative per cluster: m partial states at level 1 (lines 5-6, 9);
3. for each partial state, sample k completions of it: its label is the fraction of completed
   answers that are correct (lines 13-17); cut the completions at their next boundary and take
   the semantic centroid as that branch's partial state at the next level (lines 18-19);
   repeat up to level T.

The cost is k(1 + m·T) generations per question instead of the full tree's sum of k^i
(:attr:`QuestionData.generations` counts what was really spent; a branch whose completions end
before another boundary stops early, so the count is k(1 + Σ_t m_t) ≤ k(1 + m·T)).

Output is append-only JSONL, one line per finished question, flushed and fsynced, next to a
``.meta.json`` with the settings: a re-run skips questions already written and refuses to mix
settings, so a killed run loses only the questions in flight.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from finece_guard.data.checkers import is_correct
from finece_guard.data.choice_commit import ChoiceCommitter, CommittingSampler
from finece_guard.data.fragments import cluster, first_fragment, medoid, next_fragment
from finece_guard.data.loaders import TASKS, load_task
from finece_guard.data.records import QARecord
from finece_guard.errors import BackendError, ConfigError
from finece_guard.journal import RunReport, read_journal, run_journaled
from finece_guard.seeding import derived_seed
from finece_guard.types import CheckpointKind

#: suffix of a task spec that shows the record's passage in the prompt (``sciq+passage``)
PASSAGE_SUFFIX = "+passage"


class MonteCarloSampler(Protocol):
    """Samples n answers (empty prefix) or n continuations of a partial answer."""

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
    ) -> list[str]: ...


class FragmentEmbedder(Protocol):
    """Embeds texts as unit vectors (e.g. :class:`finece_guard.embeddings.MiniLMEmbeddings`)."""

    async def aencode(self, texts: Sequence[str]) -> NDArray[np.float32]: ...


@dataclass(frozen=True)
class TaskSpec:
    """A task name, optionally with its passages shown (``sciq+passage``)."""

    task: str
    with_context: bool = False

    @classmethod
    def parse(cls, spec: str) -> TaskSpec:
        name = spec.strip()
        with_context = name.endswith(PASSAGE_SUFFIX)
        name = name.removesuffix(PASSAGE_SUFFIX)
        if name not in TASKS:
            raise ConfigError(f"unknown task {spec!r}; use one of {', '.join(TASKS)} (append {PASSAGE_SUFFIX!r} "
                              "to show a record's passage, e.g. sciq+passage)")  # fmt: skip
        return cls(name, with_context)

    def __str__(self) -> str:
        return self.task + (PASSAGE_SUFFIX if self.with_context else "")

    def records(self, partition: str) -> list[QARecord]:
        """The task's records in ``partition``, in file order; only those with a passage when it is shown."""
        records = load_task(self.task, partition=partition)
        if not self.with_context:
            return records
        shown = [r for r in records if r.context]
        if not shown:
            raise ConfigError(f"task {self.task!r} has no passages; drop {PASSAGE_SUFFIX!r}")
        return shown


@dataclass(frozen=True)
class ConstructionConfig:
    """Alg. 1 settings: k samples, T levels, clustering threshold and cap on m, sampling."""

    k: int = 8
    levels: int = 2
    threshold: float = 0.3
    max_clusters: int | None = 3
    temperature: float = 0.8
    top_p: float = 0.95
    max_tokens: int = 128
    seed: int = 0
    #: pass every unreadable multiple-choice sample through :mod:`finece_guard.data.choice_commit`
    commit_choices: bool = False

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ConfigError(f"k={self.k}: sample at least 1 answer per state (the paper uses 30)")
        if self.levels < 0:
            raise ConfigError(f"levels (T)={self.levels} must be 0 or more")
        if not 0.0 < self.temperature <= 2.0:
            raise ConfigError(f"temperature={self.temperature} must be in (0, 2]: Monte-Carlo labels need sampling")
        if self.max_tokens < 1:
            raise ConfigError(f"max_tokens={self.max_tokens} must be positive")
        if self.max_clusters is not None and self.max_clusters < 1:
            raise ConfigError(f"max_clusters={self.max_clusters} must be at least 1 (or None for no cap)")
        if not 0.0 <= self.threshold <= 2.0:
            raise ConfigError(f"threshold={self.threshold} must be a cosine distance in [0, 2]")

    def to_meta(self) -> dict[str, Any]:
        """The settings a build's ``.meta.json`` keeps; ``commit_choices`` only when on, so builds
        started before the option existed resume unchanged."""
        data = asdict(self)
        if not self.commit_choices:
            del data["commit_choices"]
        return data


@dataclass(frozen=True)
class LabelledState:
    """One training state: the text to score and its Monte-Carlo label."""

    kind: CheckpointKind
    answer: str | None
    label: float
    n_samples: int
    level: int  # 0 question, 1..T partial, -1 complete answer


@dataclass(frozen=True)
class QuestionData:
    """Everything Alg. 1 produced for one question, plus its cost accounting."""

    key: str
    task: str
    record_id: str
    question: str
    k: int
    levels: int
    clusters: int
    reps_per_level: tuple[int, ...]
    generations: int
    states: tuple[LabelledState, ...]
    seconds: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def expected_generations(self) -> int:
        """k(1 + Σ_t m_t): what Alg. 1 spends given how many branches each level kept."""
        return self.k * (1 + sum(self.reps_per_level))

    @property
    def linear_bound(self) -> int:
        """k(1 + m·T), the paper's cost with m clusters and T levels."""
        return self.k * (1 + self.clusters * self.levels)

    @property
    def full_tree(self) -> int:
        """Σ_{i=1}^{T+1} k^i, the cost without clustering and representatives."""
        return sum(self.k**i for i in range(1, self.levels + 2))

    def to_json(self) -> str:
        data = asdict(self)
        data["states"] = [{**asdict(s), "kind": s.kind.value} for s in self.states]
        return json.dumps(data, ensure_ascii=False)

    @classmethod
    def from_json(cls, line: str) -> QuestionData:
        data = json.loads(line)
        data["states"] = tuple(LabelledState(**{**s, "kind": CheckpointKind(s["kind"])}) for s in data["states"])
        data["reps_per_level"] = tuple(data["reps_per_level"])
        return cls(**data)


def _require_committer(committer: ChoiceCommitter | None) -> ChoiceCommitter:
    """The committer ``commit_choices`` needs; a clear error when there is none."""
    if committer is None:
        raise ConfigError("commit_choices needs a committer (a served generator: --backend vllm)")
    return committer


def _fraction_correct(record: QARecord, answers: Sequence[str]) -> float:
    return sum(is_correct(record, a) for a in answers) / len(answers)


async def construct_question(
    record: QARecord,
    spec: TaskSpec,
    *,
    sampler: MonteCarloSampler,
    embedder: FragmentEmbedder,
    config: ConstructionConfig,
    committer: ChoiceCommitter | None = None,
) -> QuestionData:
    """Run Alg. 1 for one question; with ``config.commit_choices`` every sample of a multiple-choice
    question is made checkable by ``committer`` before it is labelled (and kept so as a state)."""
    t0 = time.perf_counter()
    if config.commit_choices:
        sampler = CommittingSampler(sampler, _require_committer(committer), record)
    question = record.prompt(with_context=spec.with_context)
    key = f"{spec}:{record.id}"
    c = config
    generations = 0

    async def sample(prefix: str, *where: object) -> list[str]:
        nonlocal generations
        generations += c.k
        texts = await sampler.sample_continuations(
            question, prefix, n=c.k, max_tokens=c.max_tokens, temperature=c.temperature, top_p=c.top_p,
            seed=derived_seed(c.seed, key, *where),
        )  # fmt: skip
        if len(texts) != c.k:  # labels are fractions of k: a short reply would skew them (or divide by 0)
            raise BackendError(f"the sampler returned {len(texts)} texts for n={c.k} ({key})")
        return texts

    answers = await sample("", "answers")
    states = [LabelledState(CheckpointKind.QUESTION, None, _fraction_correct(record, answers), c.k, 0)]
    states += [LabelledState(CheckpointKind.FINAL, a, float(is_correct(record, a)), 1, -1) for a in answers]

    fragments = list(dict.fromkeys(f for a in answers if (f := first_fragment(a))))  # distinct, in sample order
    current: list[str] = []
    clusters = 0
    if fragments and c.levels > 0:
        emb = await embedder.aencode(fragments)
        groups = cluster(emb, threshold=c.threshold, max_clusters=c.max_clusters)
        clusters = len(groups)
        current = [fragments[medoid(emb, g)] for g in groups]

    reps_per_level: list[int] = []
    for level in range(1, c.levels + 1):
        if not current:
            break
        reps_per_level.append(len(current))
        completions = await asyncio.gather(*(sample(p, "level", level, i) for i, p in enumerate(current)))
        nexts: list[str] = []
        for prefix, comps in zip(current, completions, strict=True):
            label = _fraction_correct(record, [prefix + comp for comp in comps])
            states.append(LabelledState(CheckpointKind.PARTIAL, prefix, label, c.k, level))
            if level < c.levels:
                candidates = list(dict.fromkeys(f for comp in comps if (f := next_fragment(prefix, comp))))
                if candidates:
                    emb = await embedder.aencode(candidates)
                    nexts.append(candidates[medoid(emb)])
        current = nexts

    return QuestionData(
        key=key,
        task=str(spec),
        record_id=record.id,
        question=question,
        k=c.k,
        levels=c.levels,
        clusters=clusters,
        reps_per_level=tuple(reps_per_level),
        generations=generations,
        states=tuple(states),
        seconds=time.perf_counter() - t0,
    )


def select_questions(
    specs: Sequence[TaskSpec], *, partition: str, limit: int | None, seed: int
) -> list[tuple[TaskSpec, QARecord]]:
    """The questions to build from: per task a seeded shuffle of the partition, first ``limit``,
    interleaved across tasks (so a partial run already holds a mix). A larger limit extends a
    smaller one's selection, so a run can be resumed with more questions."""
    per_task: list[list[tuple[TaskSpec, QARecord]]] = []
    for spec in specs:
        order = spec.records(partition)
        random.Random(f"{seed}:{spec}").shuffle(order)
        per_task.append([(spec, r) for r in order[:limit]])
    out: list[tuple[TaskSpec, QARecord]] = []
    for i in range(max((len(t) for t in per_task), default=0)):
        out += [t[i] for t in per_task if i < len(t)]
    return out


def read_dataset(paths: Iterable[Path]) -> list[QuestionData]:
    """All finished questions in one or more JSONL files (a torn or unreadable line is ignored).

    Lines are split at ``\\n`` only (:func:`finece_guard.journal.read_journal`), so text with
    U+2028 / U+0085 inside a record reads back whole.
    """
    out: list[QuestionData] = []
    for path in paths:
        if not path.is_file():
            raise ConfigError(f"{path} does not exist; build it with `finece-guard build-data --out {path}`")
        out += read_journal(path, QuestionData.from_json)
    return out


@dataclass
class BuildReport(RunReport):
    """What a build run did (``finished`` = questions built now)."""

    generations: int = 0

    @property
    def built(self) -> int:
        """Questions built by this run."""
        return self.finished


async def build_dataset(
    questions: Sequence[tuple[TaskSpec, QARecord]],
    out: Path,
    *,
    sampler: MonteCarloSampler,
    embedder: FragmentEmbedder,
    config: ConstructionConfig,
    meta: dict[str, Any] | None = None,
    concurrency: int = 1,
    on_done: Callable[[QuestionData | None], Awaitable[None] | None] | None = None,
    committer: ChoiceCommitter | None = None,
) -> BuildReport:
    """Alg. 1 over ``questions``, appending to ``out``; questions already in ``out`` are skipped.

    ``concurrency`` questions are in flight at once (their requests batch on the server); a run
    killed at any moment loses at most those. A question whose backend calls fail (after the
    client's retries) is reported in :attr:`BuildReport.failed` and retried by the next run.
    """
    if config.commit_choices:  # once, before any question: not one failure per question
        _require_committer(committer)
    report = BuildReport()

    async def work(question: tuple[TaskSpec, QARecord]) -> QuestionData:
        spec, record = question
        return await construct_question(
            record, spec, sampler=sampler, embedder=embedder, config=config, committer=committer
        )

    async def done(data: QuestionData | None) -> None:
        if data is not None:
            report.generations += data.generations
        if on_done is not None:
            maybe = on_done(data)
            if maybe is not None:
                await maybe

    return await run_journaled(
        questions, out, key=lambda q: f"{q[0]}:{q[1].id}", work=work, parse=QuestionData.from_json,
        meta={**config.to_meta(), **(meta or {})}, concurrency=concurrency, report=report, on_done=done,
    )  # fmt: skip
