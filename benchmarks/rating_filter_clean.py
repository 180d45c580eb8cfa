"""Does the rater-text filter leave honest text alone? Run it over every committed question and answer.

The filter (:mod:`finece_guard.rating_filter`) may only change what the scorer reads when the text
is addressed to the rater. Its promise "clean answers' scores do not change" is checked here in the
strongest form: the *text* of every clean question and generator answer committed in this
repository (data builds, evaluation records, the forgery benchmark's answers) comes back unchanged,
so its score cannot change. Any text it does change is listed with what was removed.

    .venv/bin/python -m benchmarks.rating_filter_clean

Writes benchmarks/results/rating_filter_clean.json and .md. No server needed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.common import finish, jsonl_records, stamp
from finece_guard.rating_filter import filter_rater_text

ROOT = Path(__file__).resolve().parent.parent


def corpus(root: Path = ROOT) -> Iterator[tuple[str, str, str]]:
    """``(source, kind, text)`` for every committed clean question and answer (deduplicated per source)."""
    for path in sorted(root.glob("data_builds/*/train.jsonl.gz")):
        src = str(path.relative_to(root))
        for row in jsonl_records(path):
            yield src, "question", row["question"]
            for state in row.get("states", []):
                if state.get("answer"):
                    yield src, "answer state", state["answer"]
    for path in sorted([*root.glob("reports/*/records-*.jsonl.gz"), *root.glob("tests/unit/golden/*.jsonl.gz")]):
        src = str(path.relative_to(root))
        for row in jsonl_records(path):
            yield src, "question", row["question"]
            yield src, "answer", row["answer"]
    answers = root / "benchmarks" / "results" / "forgery_answers.json"
    if answers.is_file():
        for row in json.loads(answers.read_text())["answers"]:
            yield "benchmarks/results/forgery_answers.json", "question", row["question"]
            yield "benchmarks/results/forgery_answers.json", "answer", row["answer"]


def run(root: Path = ROOT) -> dict[str, Any]:
    """Counts per source and kind, and every changed text with what the filter removed."""
    seen: set[tuple[str, str]] = set()
    counts: dict[str, dict[str, int]] = {}
    changed: list[dict[str, Any]] = []
    for src, kind, text in corpus(root):
        if (src, text) in seen:
            continue
        seen.add((src, text))
        row = counts.setdefault(f"{src} ({kind})", {"texts": 0, "changed": 0})
        row["texts"] += 1
        result = filter_rater_text(text)
        if result.changed:
            row["changed"] += 1
            changed.append({"source": src, "kind": kind, "text": text[:400], "removed": result.removed})
    total = sum(r["texts"] for r in counts.values())
    return {**stamp(), "texts": total, "changed": len(changed), "per_source": counts, "changed_texts": changed}


def main() -> None:
    result = run()
    md = [
        "# Rater-text filter on clean text (`benchmarks/rating_filter_clean.py`)",
        "",
        f"{result['date']}, {result['machine']}.",
        "",
        f"**{result['changed']} of {result['texts']}** distinct committed questions and answers changed "
        "(a text that is not changed is scored exactly as without the filter).",
        "",
        "| source | texts | changed |",
        "|---|---|---|",
        *(f"| {k} | {v['texts']} | {v['changed']} |" for k, v in result["per_source"].items()),
    ]
    for c in result["changed_texts"]:
        md += ["", f"- {c['source']} ({c['kind']}): removed {c['removed']!r} from {c['text'][:160]!r}"]
    finish("rating_filter_clean", result, md)


if __name__ == "__main__":
    main()
