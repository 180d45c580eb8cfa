"""Evaluation records: one JSON line per evaluated answer, and how to find and read them.

An :class:`AnswerRecord` holds everything measured on one question's greedy answer: the answer's
tokens and logprobs, FineCE's score of every distinct state (:class:`StateScore`), each checkpoint
strategy's trace raw and BCI-refined (:class:`StrategyTrace`) and every baseline's confidence.
Records are appended to ``records-<partition>.jsonl`` by the journaled runner
(:func:`finece_guard.journal.run_journaled`) and read back with :func:`read_records`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from finece_guard.data.construction import TaskSpec
from finece_guard.data.records import QARecord
from finece_guard.errors import ConfigError
from finece_guard.journal import read_journal
from finece_guard.types import CheckpointKind

#: Baseline names, in report order.
BASELINES: tuple[str, ...] = (
    "first_prob",
    "mean_token_prob",
    "min_token_prob",
    "mean_entropy",
    "deepconf_lgc",
    "p_true",
    "verbalized",
    "self_consistency",
)

_RECORDS_VERSION = 1


@dataclass(frozen=True)
class StateScore:
    """FineCE's raw score of one distinct state of the answer (the first ``n_tokens`` tokens)."""

    kind: str
    n_tokens: int
    value: float
    spread: float
    mass: float


@dataclass(frozen=True)
class StrategyTrace:
    """One strategy's checkpoints on the answer: question (index 0), partials, full answer (last).

    ``n_tokens[i]`` is how many answer tokens checkpoint ``i`` had seen; ``raw`` and ``bci`` are
    FineCE's scores and their retrospective BCI refinement. With ``z`` = number of checkpoints
    after the question, p(1) is index 1 and p(z-1) index ``z - 1`` (the question when the answer has
    no partial checkpoint, i.e. z = 1; then p(1) is the full answer).
    """

    n_tokens: tuple[int, ...]
    reasons: tuple[str, ...]
    raw: tuple[float, ...]
    bci: tuple[float, ...]
    lookahead: float | None = None
    lookahead_paths: tuple[tuple[float, ...], ...] = ()

    @property
    def z(self) -> int:
        """Checkpoints after the question-only state (partials + the full answer)."""
        return len(self.raw) - 1

    @property
    def n_partial(self) -> int:
        return len(self.raw) - 2

    def at(self, position: str, *, refined: bool = False) -> float:
        """Score at ``question`` | ``p1`` | ``pz1`` | ``full`` (raw, or BCI-refined)."""
        values = self.bci if refined else self.raw
        index = {"question": 0, "p1": 1, "pz1": self.z - 1, "full": self.z}.get(position)
        if index is None:
            raise ConfigError(f"position {position!r}: use question, p1, pz1 or full")
        return values[index]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StrategyTrace:
        return cls(
            n_tokens=tuple(data["n_tokens"]),
            reasons=tuple(data["reasons"]),
            raw=tuple(data["raw"]),
            bci=tuple(data["bci"]),
            lookahead=data.get("lookahead"),
            lookahead_paths=tuple(tuple(p) for p in data.get("lookahead_paths", ())),
        )


@dataclass(frozen=True)
class AnswerRecord:
    """Everything measured on one question's greedy answer (one JSON line of the records file)."""

    key: str
    task: str
    record_id: str
    partition: str
    question: str
    answer: str
    correct: bool
    final: str | None
    n_tokens: int
    finish_reason: str | None
    tokens: tuple[str, ...]
    token_logprobs: tuple[float | None, ...]
    states: tuple[StateScore, ...]
    strategies: dict[str, StrategyTrace]
    baselines: dict[str, float | None]
    baseline_errors: dict[str, str] = field(default_factory=dict)
    sc_finals: tuple[str | None, ...] = ()
    verbalized_text: str | None = None
    seconds: float = 0.0
    version: int = _RECORDS_VERSION

    @property
    def full_score(self) -> float:
        """FineCE's raw score of the full answer."""
        return next(s.value for s in reversed(self.states) if s.kind == CheckpointKind.FINAL.value)

    @property
    def question_score(self) -> float:
        """FineCE's raw score of the question alone."""
        return next(s.value for s in self.states if s.kind == CheckpointKind.QUESTION.value)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, line: str) -> AnswerRecord:
        data = json.loads(line)
        if data.get("version") != _RECORDS_VERSION:
            raise ValueError(f"records version {data.get('version')!r}, expected {_RECORDS_VERSION}")
        data["tokens"] = tuple(data["tokens"])
        data["token_logprobs"] = tuple(data["token_logprobs"])
        data["states"] = tuple(StateScore(**s) for s in data["states"])
        data["strategies"] = {k: StrategyTrace.from_dict(v) for k, v in data["strategies"].items()}
        data["sc_finals"] = tuple(data.get("sc_finals", ()))
        return cls(**data)


def question_key(spec: TaskSpec, record: QARecord) -> str:
    """The records file's key of a question: ``<task spec>:<record id>``."""
    return f"{spec}:{record.id}"


def records_path(out_dir: Path, partition: str) -> Path:
    """Where a partition's records live in an eval output folder."""
    return out_dir / f"records-{partition}.jsonl"


def read_records(path: Path, keys: Iterable[str] | None = None) -> list[AnswerRecord]:
    """Records in ``path`` (a torn or unreadable line is skipped), optionally only ``keys``, in file order.

    A key written twice (two runs racing on one file) is read once, first copy wins; lines are
    split at ``\\n`` only (:func:`finece_guard.journal.read_journal`).
    """
    return read_journal(path, AnswerRecord.from_json, keys)
