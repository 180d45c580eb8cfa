"""The BoolQ prompt benchmark: every prompt carries the question and passage; the table counts what answers said."""

from __future__ import annotations

import pytest

from benchmarks.yesno_prompt import PROMPTS, table
from finece_guard.data import load_task


def test_every_prompt_shows_question_and_passage_and_current_is_what_eval_sends() -> None:
    record = load_task("boolq", partition="dev", limit=1)[0]
    assert record.context
    for render in PROMPTS.values():
        text = render(record)
        assert record.question in text and record.context in text
    assert PROMPTS["current"](record) == record.prompt(with_context=True)


def test_table_counts_yes_no_unreadable_and_majority() -> None:
    records = {r.id: r for r in load_task("boolq", partition="dev", limit=4)}
    ids = list(records)
    golds = [records[i].answers[0] for i in ids]
    answers = [{"id": i, "prompt": "p", "answer": "No."} for i in ids[:3]] + [
        {"id": ids[3], "prompt": "p", "answer": "Hard to say."}
    ]
    (row,), md = table(answers, records)
    assert row["n"] == 4 and row["no"] == pytest.approx(0.75) and row["unreadable"] == pytest.approx(0.25)
    assert row["accuracy"] == pytest.approx(sum(g == "no" for g in golds[:3]) / 4)
    assert row["majority_gold"] == pytest.approx(max(golds.count("yes"), golds.count("no")) / 4)
    assert md[2].startswith("| p | 4 |")
