"""benchmarks/choice_prompt.py: the instruction swap keeps the question and options, and the table counts right."""

from __future__ import annotations

import pytest

from benchmarks.choice_prompt import INSTRUCTIONS, _key, _load, _table, render
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
    loaded = load_task("arc_easy", partition="dev", limit=4)
    records = {_key("arc_easy", r.id): r for r in loaded}
    ids = [r.id for r in loaded]
    gold = [r.answers[0] for r in loaded]
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


def test_passage_spec_shows_the_passage_and_keeps_the_plain_task_apart() -> None:
    specs = _load(["sciq_mc", "sciq_mc+passage"], 3)
    plain = [r for key, (s, r) in specs.items() if key.startswith("sciq_mc|")]
    shown = [(s, r) for key, (s, r) in specs.items() if key.startswith("sciq_mc+passage|")]
    assert len(plain) == 3 and len(shown) == 3  # same record ids under two specs: none overwritten
    spec, record = shown[0]
    assert spec.with_context and record.context
    prompt = render(record, INSTRUCTIONS["current"], with_context=spec.with_context)
    assert prompt == record.prompt(with_context=True) and record.context in prompt
    assert record.context not in render(record, INSTRUCTIONS["current"])


@pytest.mark.asyncio
async def test_commit_keeps_readable_answers_without_asking_the_server() -> None:
    from benchmarks.choice_prompt import _commit

    specs = _load(["arc_easy"], 2)
    answers = [
        {"id": r.id, "task": "arc_easy", "instruction": "current", "answer": f"Answer: {r.answers[0]}"}
        for _, r in specs.values()
    ]
    # port 9 (discard) on localhost: any request would fail, so passing means none was made
    out = await _commit("http://127.0.0.1:9/v1", answers, specs, 2)
    assert [a["instruction"] for a in out] == ["current+commit"] * 2
    assert [a["answer"] for a in out] == [a["answer"] for a in answers]
    assert not any(a["committed"] for a in out)
