"""Which multiple-choice instruction makes the default generator answer in a checkable form?

Issue 11, lever 6: SmolLM2-135M leaves 9-24% of its multiple-choice answers without a readable
option, and a confidence score of an answer nobody can check is noise. This benchmark answers the
same dev-partition questions greedily (the eval harness's ``max_tokens``) under each candidate
last line of the prompt and reports, per task and instruction, the accuracy, the share of answers
:func:`~finece_guard.data.checkers.extract_choice` cannot read, and how many answers copied the
instruction's placeholder instead of a letter. The answers are kept in the JSON, so a checker
change can be re-measured on the very same text (``--rescore``) without a server.

    .venv/bin/python -m benchmarks.choice_prompt --base-url http://127.0.0.1:8021/v1 --limit 25 \\
        --label dev-2026-12-02
    .venv/bin/python -m benchmarks.choice_prompt --rescore benchmarks/results/choice_prompt_dev-2026-12-02.json
    .venv/bin/python -m benchmarks.choice_prompt --tasks sciq_mc,sciq_mc+passage --instructions current \\
        --limit 40 --label passage-dev-2026-12-04

A task may carry the build's ``+passage`` suffix (the record's passage shown above the question,
exactly as ``build-data`` and ``eval`` render it).

``--commit`` adds a second stage to every answer the checker cannot read
(:func:`finece_guard.data.choice_commit.commit_answer`, what ``build-data`` and ``eval`` do with
``--commit-choices``): the same conversation continued with ``COMMIT_PREFIX`` and one option letter
chosen by the server under a ``structured_outputs`` choice constraint (one short request; the free
answer is kept as it was).
The table then reports the two-stage answers as instruction ``<name>+commit`` beside the free ones.

    .venv/bin/python -m benchmarks.choice_prompt --tasks sciq_mc,arc_easy,csqa --instructions current \
        --limit 40 --commit --label commit-dev-2026-12-05

Writes benchmarks/results/choice_prompt_<label>.json and .md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
from pathlib import Path
from typing import Any

from benchmarks.common import finish, greedy_answers, stamp
from finece_guard.backends.openai_generator import OpenAICompatGenerator
from finece_guard.config import DEFAULT_GENERATOR
from finece_guard.data.checkers import extract_choice
from finece_guard.data.choice_commit import COMMIT_PREFIX, commit_answer, needs_commit
from finece_guard.data.construction import TaskSpec
from finece_guard.data.records import CHOICE_INSTRUCTION, LETTERS, QARecord
from finece_guard.errors import ConfigError

#: Candidate last lines; ``{letters}`` becomes "A, B, C or D" for a four-option question.
INSTRUCTIONS: dict[str, str] = {
    "current": CHOICE_INSTRUCTION,
    "end-letter": "Explain your reasoning briefly, then end with the line 'Answer: X', where X is one of {letters}.",
    "letter-first": "Start your reply with 'Answer: X', where X is one of {letters}, then explain briefly.",
    # 2026-12-03: a worked example (a small model copies a format it has seen more readily than one
    # it is told), and the shortest checkable reply
    "one-shot": "Example of a reply to another question:\n"
    '"Sunlight is the energy source plants use to make food. Answer: C"\n'
    "Now reply to the question above the same way: explain your reasoning briefly, then end with "
    "'Answer: ' and one of {letters}.",
    "letter-only": "Reply with 'Answer: ' followed by the letter of the correct option ({letters}) and nothing else.",
}
TASKS = ("arc_easy", "sciq_mc", "arc_challenge")
PLACEHOLDER = re.compile(r"<\s*letter\s*>|\bAnswer:\s*X\b", re.IGNORECASE)


def _letters(record: QARecord) -> str:
    labels = LETTERS[: len(record.choices)]
    return ", ".join(labels[:-1]) + f" or {labels[-1]}"


def render(record: QARecord, instruction: str, *, with_context: bool = False) -> str:
    """The record's prompt (its passage first when ``with_context``) with its last line (the task
    instruction) replaced by ``instruction``."""
    head, last = record.prompt(with_context=with_context).rsplit("\n", 1)
    if last != CHOICE_INSTRUCTION:  # a check that `python -O` must not drop
        raise ConfigError(
            f"{record.id}: the prompt no longer ends with the choice instruction ({last!r}); "
            "update benchmarks/choice_prompt.py to the new prompt layout"
        )
    return f"{head}\n{instruction.format(letters=_letters(record))}"


def _key(task: str, record_id: str) -> str:
    """One record under one task spec (``sciq_mc`` and ``sciq_mc+passage`` share record ids)."""
    return f"{task}|{record_id}"


def _load(tasks: list[str], limit: int) -> dict[str, tuple[TaskSpec, QARecord]]:
    out: dict[str, tuple[TaskSpec, QARecord]] = {}
    for task in tasks:
        spec = TaskSpec.parse(task)
        out |= {_key(str(spec), r.id): (spec, r) for r in spec.records("dev")[:limit]}
    return out


async def _answers(
    base_url: str, records: dict[str, tuple[TaskSpec, QARecord]], names: list[str], concurrency: int
) -> list[dict[str, Any]]:
    jobs = [(s, r, n) for n in names for s, r in records.values()]
    prompts = [render(r, INSTRUCTIONS[n], with_context=s.with_context) for s, r, n in jobs]
    texts = await greedy_answers(base_url, prompts, concurrency)
    return [
        {"id": r.id, "task": str(s), "instruction": n, "answer": t} for (s, r, n), t in zip(jobs, texts, strict=True)
    ]


async def _commit(
    base_url: str, answers: list[dict[str, Any]], records: dict[str, tuple[TaskSpec, QARecord]], concurrency: int
) -> list[dict[str, Any]]:
    """Each answer again as instruction ``<name>+commit``: unchanged where a choice is readable, else
    continued with :data:`COMMIT_PREFIX` and one letter the server picks under a choice constraint."""
    generator = OpenAICompatGenerator(base_url, model=DEFAULT_GENERATOR)
    gate = asyncio.Semaphore(concurrency)

    async def one(a: dict[str, Any]) -> dict[str, Any]:
        spec, record = records[_key(a["task"], a["id"])]
        out = {**a, "instruction": f"{a['instruction']}+commit", "committed": False}
        if not needs_commit(record, a["answer"]):
            return out
        prompt = render(record, INSTRUCTIONS[a["instruction"]], with_context=spec.with_context)
        async with gate:
            answer = await commit_answer(record, prompt, a["answer"], generator)
        return out | {"answer": answer, "committed": True}

    try:
        return list(await asyncio.gather(*(one(a) for a in answers)))
    finally:
        await generator.aclose()


def _table(answers: list[dict[str, Any]], records: dict[str, QARecord]) -> tuple[list[dict[str, Any]], list[str]]:
    """Accuracy, unreadable and placeholder shares per instruction and task; ``records`` by :func:`_key`."""
    rows: list[dict[str, Any]] = []
    for name in dict.fromkeys(a["instruction"] for a in answers):
        for task in [*dict.fromkeys(a["task"] for a in answers), "pooled"]:
            mine = [a for a in answers if a["instruction"] == name and task in ("pooled", a["task"])]
            golds = [records[_key(a["task"], a["id"])] for a in mine]
            picks = [extract_choice(a["answer"], r.choices) for a, r in zip(mine, golds, strict=True)]
            rows.append(
                {
                    "instruction": name,
                    "task": task,
                    "n": len(mine),
                    "accuracy": sum(p == r.gold_index for p, r in zip(picks, golds, strict=True)) / len(mine),
                    "unreadable": sum(p is None for p in picks) / len(mine),
                    "placeholder": sum(bool(PLACEHOLDER.search(a["answer"])) for a in mine) / len(mine),
                }
            )
    md = ["| instruction | task | n | accuracy | unreadable | placeholder copied |", "|---|---|---|---|---|---|"]
    md += [
        f"| {r['instruction']} | {r['task']} | {r['n']} | {r['accuracy']:.3f} | {r['unreadable']:.1%} | "
        f"{r['placeholder']:.1%} |"
        for r in rows
    ]
    return rows, md


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8021/v1")
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--instructions", default=",".join(INSTRUCTIONS))
    parser.add_argument("--limit", type=int, default=25, help="dev questions per task")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--label", default="dev")
    parser.add_argument("--commit", action="store_true", help="add the constrained second stage (see above)")
    parser.add_argument("--rescore", type=Path, help="re-check the answers of an earlier result file (no server)")
    args = parser.parse_args(argv)
    if args.rescore:
        earlier = json.loads(args.rescore.read_text())
        answers, tasks, meta = earlier["answers"], earlier["tasks"], earlier["stamp"]
        label = f"{args.rescore.stem.removeprefix('choice_prompt_')}-rescored"
    else:
        tasks, meta, label = args.tasks.split(","), stamp(args.base_url), args.label
    specs = _load(tasks, args.limit)
    if not args.rescore:
        names = args.instructions.split(",")
        answers = asyncio.run(_answers(args.base_url, specs, names, args.concurrency))
        if args.commit:
            answers += asyncio.run(_commit(args.base_url, answers, specs, args.concurrency))
    rows, md = _table(answers, {key: record for key, (_, record) in specs.items()})
    head = [
        f"# Multiple-choice instruction vs checkable answers ({label})",
        "",
        f"{meta['date']}, {meta['machine']}; dev partition, greedy, {len(specs)} questions of "
        f"{', '.join(tasks)}; instructions:",
        "",
    ]
    named = dict.fromkeys(a["instruction"].removesuffix("+commit") for a in answers)
    head += [f"- `{n}`: {INSTRUCTIONS[n]!r}" for n in named]
    if any(a["instruction"].endswith("+commit") for a in answers):
        head.append(
            f"- `<name>+commit`: the same answers; each unreadable one continued with {COMMIT_PREFIX!r} and one "
            "letter under a structured_outputs choice constraint"
        )
    head.append("")
    finish(f"choice_prompt_{label}", {"stamp": meta, "tasks": tasks, "rows": rows, "answers": answers}, head + md)


if __name__ == "__main__":
    main()
