"""Two adapters on the same eval answers, scored by one already running server.

``finece-guard eval --compare-adapter`` starts a second server for the reference adapter; when
one server already serves both LoRAs (``--lora-modules finece=... cand=...``), this re-scores the
evaluated records with the reference adapter on that server (journaled: re-run to resume) and
writes the same paired comparison the eval report has (per task and pooled: question, p(1), full;
ΔAUROC / ΔECE / ΔBrier with paired bootstrap intervals).

    .venv/bin/python -m benchmarks.rescore_same_answers runs/x/eval/records-test.jsonl \\
        --base-url http://127.0.0.1:8021/v1 --reference finece --label cand-vs-default-2026-12-02

Writes the re-scored records next to the source (``records-<p>.rescored-<reference>.jsonl``) and
benchmarks/results/adapter_pair_<label>.json and .md.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from pathlib import Path

from benchmarks.common import finish, stamp
from finece_guard.backends.openai_scorer import OpenAICompatScorer
from finece_guard.config import load_settings
from finece_guard.evaluation.compare import comparison_section, rescore_records
from finece_guard.evaluation.markdown import comparison_markdown
from finece_guard.evaluation.records import read_records


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("records", type=Path)
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--reference", required=True, help="served name of the reference adapter (e.g. finece)")
    ap.add_argument("--label", required=True)
    ap.add_argument("--strategy", default="paragraph")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--bootstrap", type=int, default=1000)
    args = ap.parse_args(argv)
    settings = load_settings()
    records = read_records(args.records)
    out = args.records.with_name(args.records.name.replace(".jsonl", f".rescored-{args.reference}.jsonl"))
    scorer = OpenAICompatScorer(args.base_url, model=args.reference, timeout_s=300)

    async def go() -> None:
        try:
            await rescore_records(
                records, out, scorer=scorer, alpha=settings.bci_alpha, window=settings.bci_window,
                meta={"reference_adapter": args.reference, "source": str(args.records)}, concurrency=args.concurrency,
            )  # fmt: skip
        finally:
            await scorer.aclose()

    asyncio.run(go())
    reference = read_records(out, [r.key for r in records])
    comp = comparison_section(records, reference, reference_label=f"served adapter `{args.reference}`",
                              strategy=args.strategy, n_resamples=args.bootstrap, seed=0)  # fmt: skip
    result = {**stamp(args.base_url), "records": str(args.records), "rescored": str(out), "comparison": comp}
    md = [f"# Adapter pair on the same answers: {args.label}", "", f"{result['machine']}; {result['date']}; "
          f"records `{args.records}` ({len(records)} answers).", *comparison_markdown(comp)]  # fmt: skip
    finish(f"adapter_pair_{args.label}", result, md)


if __name__ == "__main__":
    main()
