"""What a rebuild with ``--commit-choices`` changed, question by question, against the build it repeats.

Issue 11, lever 6. ``data_builds/smollm2-2026-12-06-commit`` repeats the multiple-choice questions of
``data_builds/smollm2-2026-12-01`` with the same settings and seed, adding only the choice commit stage
(:mod:`finece_guard.data.choice_commit`). Pairing the two builds by question key shows how much label
noise the stage removed: per task, the share of stored final samples that were committed (contain
:data:`~finece_guard.data.choice_commit.COMMIT_PREFIX` after the free text), the sampled accuracy (mean
label of the final samples) old -> new, the share of questions no sample got right old -> new, and the
share of final samples whose free text is the old sample's text exactly (the same seed should give the
same text; where it does not, the server's batching changed the sampling).

    .venv/bin/python -m benchmarks.build_pair data_builds/smollm2-2026-12-01/train.jsonl.gz \\
        data_builds/smollm2-2026-12-06-commit/train.jsonl.gz --label commit-2026-12-06

Writes benchmarks/results/build_pair_<label>.json and .md.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.common import finish, jsonl_records, stamp
from finece_guard.data.choice_commit import COMMIT_PREFIX


def finals(row: dict[str, Any]) -> list[tuple[str, float]]:
    """(answer, label) of each stored final-answer state, in stored order."""
    return [(s["answer"], float(s["label"])) for s in row["states"] if s["kind"] == "final"]


def free_text(answer: str) -> str:
    """The answer without the committed line (the text the sampler produced)."""
    head, sep, tail = answer.rpartition(COMMIT_PREFIX)
    return head if sep and len(tail.strip()) == 1 else answer


def compare(old_rows: Iterable[dict[str, Any]], new_rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per-task (and pooled) statistics over the questions both builds hold."""
    old = {r["key"]: r for r in old_rows}
    acc: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for row in new_rows:
        prev = old.get(row["key"])
        for task in (row["task"], "pooled"):
            a = acc[task]
            a["questions"] += 1
            if prev is None:
                continue
            new_f, old_f = finals(row), finals(prev)
            a["paired"] += 1
            a["new_samples"] += len(new_f)
            a["old_samples"] += len(old_f)
            a["committed"] += sum(free_text(t) != t for t, _ in new_f)
            a["new_correct"] += sum(y for _, y in new_f)
            a["old_correct"] += sum(y for _, y in old_f)
            a["new_all_wrong"] += not any(y > 0 for _, y in new_f)
            a["old_all_wrong"] += not any(y > 0 for _, y in old_f)
            a["same_text"] += sum(free_text(n) == o for (n, _), (o, _) in zip(new_f, old_f, strict=False))
    out: dict[str, dict[str, Any]] = {}
    for task, a in sorted(acc.items(), key=lambda kv: (kv[0] == "pooled", kv[0])):
        p, ns, os_ = a["paired"], a["new_samples"], a["old_samples"]
        out[task] = {
            "questions": int(a["questions"]), "paired": int(p),
            "committed_share": a["committed"] / ns if ns else None,
            "accuracy_old": a["old_correct"] / os_ if os_ else None,
            "accuracy_new": a["new_correct"] / ns if ns else None,
            "all_wrong_old": a["old_all_wrong"] / p if p else None,
            "all_wrong_new": a["new_all_wrong"] / p if p else None,
            "same_text_share": a["same_text"] / min(ns, os_) if min(ns, os_) else None,
        }  # fmt: skip
    return out


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old", type=Path, help="the build repeated (.jsonl or .jsonl.gz)")
    ap.add_argument("new", type=Path, help="the rebuild with --commit-choices")
    ap.add_argument("--label", required=True)
    args = ap.parse_args(argv)
    rows = compare(jsonl_records(args.old), jsonl_records(args.new))
    result = {**stamp(), "old": str(args.old), "new": str(args.new), "tasks": rows}

    def pct(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.1%}"

    def num(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.3f}"

    md = [
        f"# Rebuild with --commit-choices against the build it repeats ({args.label})", "",
        f"{result['date']}; old `{args.old}`, new `{args.new}`; paired by question key.", "",
        "| task | questions (paired) | samples committed | sampled accuracy old → new "
        "| all-wrong questions old → new | samples identical up to the commit |",
        "|---|---|---|---|---|---|",
        *(f"| {t} | {r['questions']} ({r['paired']}) | {pct(r['committed_share'])} | "
          f"{num(r['accuracy_old'])} → {num(r['accuracy_new'])} | {pct(r['all_wrong_old'])} → "
          f"{pct(r['all_wrong_new'])} | {pct(r['same_text_share'])} |" for t, r in rows.items()),
    ]  # fmt: skip
    finish(f"build_pair_{args.label}", result, md)


if __name__ == "__main__":
    main()
