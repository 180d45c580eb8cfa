"""FineCE training examples: labelled states -> (scorer prompt, soft digit target), split by question.

The prompt comes from :func:`finece_guard.prompts.build_scorer_messages`, the same function the
served scorer uses, so training and inference can never drift apart. The target is a *soft*
distribution over the ten digit tokens whose expected value is the Monte-Carlo label: the
readout (:meth:`finece_guard.prompts.ScoreScale.read`) is an expectation over the digits, so a
label of 0.55 (x = 0.55·9 = 4.95) is taught as 5% on "4" and 95% on "5" (mean 4.95 exactly)
instead of being rounded to "5" (0.556) and losing the resolution between levels.

Train and dev are split **by question** (never by state): every state of a question - its
question-only state, its partial answers and its complete answers - lands on the same side, so
dev metrics never score text the adapter was trained on. The split hashes the record's *item
key* (:func:`finece_guard.data.partition.item_key`, which drops the task prefix), so the same
underlying question asked as ``sciq``, ``sciq+passage`` or ``sciq_mc`` also stays on one side.

Adversarial augmentation (:func:`forged_examples`): copies of partial and complete states whose
answer carries a forged confidence payload (:mod:`finece_guard.data.forgery`) and **keeps the
clean state's label**, so the adapter learns that text inside the answer claiming a score says
nothing about correctness. Copies keep their question's key, so they fall on its split side.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from finece_guard.data.construction import QuestionData
from finece_guard.data.forgery import Payload, choose_payloads, inject
from finece_guard.data.partition import item_key
from finece_guard.errors import ConfigError
from finece_guard.prompts import DEFAULT_SCALE, build_scorer_messages
from finece_guard.types import CheckpointKind

#: number of score levels ("0".."9"), shared with the inference readout
N_LEVELS = len(DEFAULT_SCALE.levels)
#: salt of the train/dev hash (distinct from the data partition's, so dev is a fresh subset of train)
_SPLIT_SALT = b"finece-guard/train-dev/v1\x00"


def soft_target(label: float, n_levels: int = N_LEVELS) -> tuple[float, ...]:
    """Probabilities over the score levels whose expected level is exactly ``label * (n_levels - 1)``.

    The mass goes to the two neighbouring levels floor(x) and ceil(x) (one level when x is whole):
    the sharpest distribution with that mean, so the model is not taught spread it does not need.
    """
    if isinstance(label, bool) or not isinstance(label, int | float) or not 0.0 <= label <= 1.0:
        raise ConfigError(f"confidence label must be a number in [0, 1], got {label!r}; is the data file corrupt?")
    if n_levels < 2:
        raise ConfigError(f"n_levels={n_levels}: a score scale needs at least 2 levels")
    x = float(label) * (n_levels - 1)
    lo = min(math.floor(x), n_levels - 1)
    hi = min(lo + 1, n_levels - 1)
    probs = [0.0] * n_levels
    upper = x - lo
    probs[lo] += 1.0 - upper
    probs[hi] += upper
    return tuple(probs)


def expected_level(probs: Sequence[float]) -> float:
    """The readout of a distribution over levels, as a confidence in [0, 1]."""
    return sum(i * p for i, p in enumerate(probs)) / (len(probs) - 1)


@dataclass(frozen=True)
class TrainingExample:
    """One state to score: who it belongs to, the text, and its label."""

    key: str
    task: str
    kind: CheckpointKind
    question: str
    answer: str | None
    label: float
    level: int
    #: name of the forged-confidence payload the answer carries (None: a clean state)
    payload: str | None = None

    @property
    def target(self) -> tuple[float, ...]:
        return soft_target(self.label)

    def messages(self, answer: str | None = None) -> list[dict[str, str]]:
        """Scorer chat messages (``answer`` overrides the stored one, e.g. when truncated).

        Built without the rater-text filter: a forged twin must reach the adapter as it is, so that
        training teaches it to ignore forged confidence text (the filter is only a second line)."""
        return build_scorer_messages(
            self.question, self.answer if answer is None else answer, self.kind, strip_rater_text=False
        )


def examples_from(data: Iterable[QuestionData]) -> list[TrainingExample]:
    """Every labelled state of every question, in file order."""
    out: list[TrainingExample] = []
    for q in data:
        for s in q.states:
            kind = CheckpointKind(s.kind)
            soft_target(s.label)  # validate early, naming the question
            if kind is not CheckpointKind.QUESTION and s.answer is None:
                raise ConfigError(f"question {q.key}: a {kind.value} state has no answer text; rebuild the data file")
            out.append(TrainingExample(q.key, q.task, kind, q.question, s.answer, float(s.label), s.level))
    return out


def _forgery_position(key: str) -> float:
    digest = hashlib.sha256(b"finece-guard/forgery/v1\x00" + key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def forged_examples(
    examples: Sequence[TrainingExample],
    rate: float,
    *,
    payloads: Sequence[Payload] | None = None,
    seed: int = 0,
) -> list[TrainingExample]:
    """Forged twins of the answer-carrying states, each with the clean state's label and kind.

    ``rate`` is the expected number of twins per partial / complete state (``0.5``: half of them
    get one; ``2``: each gets two distinct payloads). Which states and which payloads is a
    deterministic function of the state (question key, kind, answer) and ``seed``. Default
    payloads: :func:`finece_guard.data.forgery.train_payloads` (the held-out ones stay unseen).
    Question-only states carry no answer and get no twin.
    """
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0.0 <= rate <= 16.0:
        raise ConfigError(f"forgery rate={rate!r} must be a number in [0, 16] (twins per answer state; 0 = off)")
    out: list[TrainingExample] = []
    whole, frac = int(rate), rate - int(rate)
    for ex in examples:
        if ex.answer is None or ex.payload is not None or ex.kind is CheckpointKind.QUESTION:
            continue
        ident = f"{seed}\x00{ex.key}\x00{ex.kind.value}\x00{ex.level}\x00{ex.answer}"
        n = whole + (1 if _forgery_position(ident) < frac else 0)
        for p in choose_payloads(ident, n, payloads):
            out.append(dataclasses.replace(ex, answer=inject(ex.answer, p), payload=p.name))
    return out


def split_key(data: QuestionData) -> str:
    """What the train/dev split hashes: the underlying item, not the task or the state."""
    return item_key(data.record_id) if data.record_id else data.key


def dev_position(data: QuestionData) -> float:
    """The question's position in [0, 1) for the train/dev split (fixed for a given item)."""
    digest = hashlib.sha256(_SPLIT_SALT + split_key(data).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split_by_question(
    data: Sequence[QuestionData], dev_fraction: float = 0.1
) -> tuple[list[QuestionData], list[QuestionData]]:
    """(train, dev): questions whose item hashes below ``dev_fraction`` go to dev, with all their states."""
    if not 0.0 <= dev_fraction < 1.0:
        raise ConfigError(f"dev_fraction={dev_fraction} must be in [0, 1) (0.1 is typical; 0 means no dev set)")
    train: list[QuestionData] = []
    dev: list[QuestionData] = []
    for q in data:
        (dev if dev_position(q) < dev_fraction else train).append(q)
    return train, dev


def check_disjoint(train: Sequence[QuestionData], dev: Sequence[QuestionData]) -> None:
    """Refuse explicit dev data that shares questions with the training data."""
    shared = sorted({split_key(q) for q in train} & {split_key(q) for q in dev})
    if shared:
        raise ConfigError(
            f"{len(shared)} question(s) are in both the training data and --dev-data (e.g. {shared[0]!r}); "
            "dev metrics would score trained text. Remove them from one side, or drop --dev-data to split "
            "by --dev-fraction."
        )
