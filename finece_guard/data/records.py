"""One immutable record type for every offline QA task, and the prompt the generator sees.

Loaders turn nine differently shaped datasets (multiple choice with letter or digit labels,
alias lists, a single short answer, yes/no questions on a passage, worked maths solutions) into
:class:`QARecord`, so the rest of the library (generation, answer checking, FineCE training
data) handles one shape only. The instruction strings are module constants because training
data and evaluation must render questions byte-identically.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from enum import StrEnum

from finece_guard.errors import ConfigError
from finece_guard.runtime.text import CONTEXT_TEMPLATE as CONTEXT_TEMPLATE  # the guard puts passages the same way

#: Last line of a multiple-choice prompt. Measured on SmolLM2-135M (80 train questions each): with
#: "answer with the letter, then explain" it recited the option list in 22-40 of 80 answers and
#: scored 15% / 14% / 12.5% (ARC-Easy / SciQ-MC / CSQA); reasoning first and ending with
#: "Answer: <letter>" cut recitals to 2-4 and scored 25% / 27.5% / 20%.
CHOICE_INSTRUCTION = "Explain your reasoning briefly, then give the final answer as 'Answer: <letter>'."
#: Last line of an open-question prompt (TriviaQA, NQ-Open, SciQ).
OPEN_INSTRUCTION = "Answer briefly, then explain."
#: Last line of a yes/no prompt (BoolQ); the answer checker reads the leading "yes" or "no".
YESNO_INSTRUCTION = "Answer yes or no, then explain briefly."
#: The gold answers of a yes/no record: ``answers`` is one of them, alone.
YES_NO = ("yes", "no")
#: Last line of a GSM8K prompt; the answer checker reads the number after "The answer is".
MATH_INSTRUCTION = "Solve step by step and end with 'The answer is N.'"

#: Option labels, in order: choice ``i`` is labelled ``LETTERS[i]``.
LETTERS = string.ascii_uppercase


class AnswerKind(StrEnum):
    """How a generated answer is checked against the gold answers."""

    CHOICE = "choice"  # pick one labelled option; answers = (gold letter, gold option text)
    ALIAS = "alias"  # open answer, any of several gold aliases (TriviaQA, NQ-Open)
    SHORT = "short"  # open answer, one short gold answer (SciQ)
    NUMERIC = "numeric"  # final number (GSM8K); answers = (gold number, worked solution)
    YESNO = "yesno"  # yes/no question (BoolQ); answers = ("yes",) or ("no",)


@dataclass(frozen=True, slots=True)
class QARecord:
    """One question with its gold answers, as every task is represented after loading.

    ``id`` is stable and prefixed with the task name (``"arc_easy/MCAS_2000_4_6"``).
    For :attr:`AnswerKind.CHOICE` records ``answers`` is ``(gold letter, gold option text)`` and
    ``choices`` are labelled A, B, C, ... in order. For :attr:`AnswerKind.NUMERIC` records
    ``answers[0]`` is the gold number as written in the dataset (``"1,600"``) and ``answers[1]``,
    when present, a worked solution ending in "The answer is N.".
    """

    id: str
    task: str
    question: str
    answers: tuple[str, ...]
    choices: tuple[str, ...] = ()
    context: str | None = None
    kind: AnswerKind = AnswerKind.SHORT

    def __post_init__(self) -> None:
        if not self.id.startswith(f"{self.task}/"):
            raise ConfigError(f"record id {self.id!r} must start with its task name {self.task!r} and '/'")
        if not self.answers:
            raise ConfigError(f"record {self.id!r} has no gold answer")
        if self.kind is AnswerKind.CHOICE:
            self._check_choice()
        if self.kind is AnswerKind.YESNO and (len(self.answers) != 1 or self.answers[0] not in YES_NO):
            raise ConfigError(f"record {self.id!r}: a yes/no question's answers must be ('yes',) or ('no',)")

    def _check_choice(self) -> None:
        if not 2 <= len(self.choices) <= len(LETTERS):
            raise ConfigError(f"record {self.id!r}: a choice question needs 2..26 options, got {len(self.choices)}")
        letters = LETTERS[: len(self.choices)]
        if len(self.answers) < 2 or len(self.answers[0]) != 1 or self.answers[0] not in letters:
            raise ConfigError(f"record {self.id!r}: answers must be (gold letter in {letters!r}, gold text)")
        if self.choices[letters.index(self.answers[0])] != self.answers[1]:
            raise ConfigError(f"record {self.id!r}: gold text does not match option {self.answers[0]}")

    @property
    def gold_index(self) -> int | None:
        """Index of the gold option for choice records, else None."""
        if self.kind is not AnswerKind.CHOICE:
            return None
        return LETTERS.index(self.answers[0])

    def prompt(self, *, with_context: bool = False) -> str:
        """The question as the generator sees it (the user turn), with the task's instruction."""
        head = CONTEXT_TEMPLATE.format(context=self.context) if with_context and self.context else ""
        if self.kind is AnswerKind.CHOICE:
            options = "\n".join(f"{LETTERS[i]}) {text}" for i, text in enumerate(self.choices))
            return f"{head}Question: {self.question}\nOptions:\n{options}\n{CHOICE_INSTRUCTION}"
        if self.kind is AnswerKind.NUMERIC:
            return f"{head}{self.question}\n{MATH_INSTRUCTION}"
        if self.kind is AnswerKind.YESNO:
            return f"{head}{self.question}\n{YESNO_INSTRUCTION}"
        return f"{head}{self.question}\n{OPEN_INSTRUCTION}"
