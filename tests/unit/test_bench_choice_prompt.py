"""benchmarks/choice_prompt.py: the instruction swap keeps the question and options, and the table counts right."""

from __future__ import annotations

import pytest

from benchmarks.choice_prompt import INSTRUCTIONS, _table, render
from finece_guard.data.loaders import load_task
from finece_guard.data.records import CHOICE_INSTRUCTION, LETTERS


def test_render_replaces_only_the_instruction_line() -> None:
    record = load_task("arc_easy", partition="dev", limit=1)[0]
    assert render(record, INSTRUCTIONS["current"]) == record.prompt()
    swapped = render(record, INSTRUCTIONS["end-letter"])
    assert swapped.rsplit("\n", 1)[0] == record.prompt().rsplit("\n", 1)[0]
    assert swapped.endswith(
        f"one of {', '.join(LETTERS[: len(record.choices) - 1])} or {LETTERS[len(record.choices) - 1]}."
    )
    assert CHOICE_INSTRUCTION not in swapped


def test_table_counts_accuracy_unreadable_and_copied_placeholders() -> None:
    records = {r.id: r for r in load_task("arc_easy", partition="dev", limit=4)}
    ids = list(records)
    gold = [records[i].answers[0] for i in ids]
    wrong = [next(x for x in "ABCD" if x != g) for g in gold]
    texts = [f"Answer: {gold[0]}", f"Answer: {wrong[1]}", "Answer: <letter>", "Nothing here."]
    answers = [
        {"id": i, "task": "arc_easy", "instruction": "current", "answer": t} for i, t in zip(ids, texts, strict=True)
    ]
    rows, md = _table(answers, records)
    pooled = next(r for r in rows if r["task"] == "pooled")
    assert pooled["n"] == 4
    assert pooled["accuracy"] == pytest.approx(0.25)
    assert pooled["unreadable"] == pytest.approx(0.5)
    assert pooled["placeholder"] == pytest.approx(0.25)
    assert "| current | pooled | 4 | 0.250 | 50.0% | 25.0% |" in md


def test_render_refuses_a_prompt_whose_last_line_is_not_the_choice_instruction() -> None:
    from finece_guard.errors import ConfigError

    record = load_task("sciq", partition="dev", limit=1)[0]  # open QA: no choice instruction
    assert not record.prompt().endswith(CHOICE_INSTRUCTION)
    with pytest.raises(ConfigError, match="choice instruction"):
        render(record, INSTRUCTIONS["current"])
