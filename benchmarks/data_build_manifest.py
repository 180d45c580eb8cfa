"""Snapshot a (possibly still running) ``build-data`` JSONL into a committed, compressed dataset.

Why: a large Monte-Carlo build takes several sittings on 2 CPU cores; its progress must be
committed so training can be re-run without regenerating. This writes, under ``--dest``:

* ``train.jsonl.gz``: the finished questions (gzip, deterministic: mtime 0, so an unchanged
  build gives byte-identical files),
* ``manifest.json`` / ``manifest.md``: settings (the build's ``.meta.json``), per-task counts,
  the generator's sampled accuracy (mean question label = fraction of the k answers correct),
  the share of complete answers with no readable final answer (issue 11, lever 6), generations,
  generated tokens/s from a vLLM ``/metrics`` poll log, the CPU, and the sha256 of the data.

    .venv/bin/python -m benchmarks.data_build_manifest runs/data-2026-12-01/train.jsonl \\
        --dest data_builds/smollm2-2026-12-01 --metrics-log runs/data-2026-12-01/metrics.log
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import itertools
import json
import statistics
from pathlib import Path
from typing import Any

from benchmarks.common import cpu_model, stamp
from finece_guard.data.checkers import extract_final
from finece_guard.data.construction import QuestionData, TaskSpec, read_dataset
from finece_guard.data.loaders import load_task
from finece_guard.types import CheckpointKind

MAX_BYTES = 20 * 1024 * 1024


#: Two polls further apart than this belong to different sittings (the poller samples every 60 s).
_MAX_POLL_GAP_S = 300


def _tokens_per_s(log: Path | None) -> dict[str, Any] | None:
    """Generated tokens/s over the polls of a log that several sittings appended to.

    Only steps between consecutive polls at most :data:`_MAX_POLL_GAP_S` apart whose counters did
    not go down count (a server restart resets them; the time between sittings is no build time).
    """
    if log is None or not log.is_file():
        return None
    rows = []
    for line in log.read_text().splitlines():
        parts = line.split()
        try:
            rows.append((int(parts[0]), float(parts[2].removeprefix("gen=")), float(parts[3].removeprefix("prompt="))))
        except (IndexError, ValueError):
            continue
    span, gen, prompt, segments, last_end = 0, 0.0, 0.0, 0, None
    for (t0, g0, p0), (t1, g1, p1) in itertools.pairwise(rows):
        if 0 < t1 - t0 <= _MAX_POLL_GAP_S and g1 >= g0 and p1 >= p0:
            segments += t0 != last_end  # a step that does not continue the previous one starts a sitting
            span, gen, prompt, last_end = span + t1 - t0, gen + g1 - g0, prompt + p1 - p0, t1
    if span == 0:
        return None
    return {"seconds": span, "generated_tokens": gen, "prompt_tokens": prompt, "sittings": segments,
            "generated_tokens_per_s": gen / span, "prompt_tokens_per_s": prompt / span,
            "note": "server-wide vLLM counters: include any other requests served meanwhile "
                    "(e.g. the forgery-injection scoring run)"}  # fmt: skip


def task_stats(data: list[QuestionData]) -> dict[str, Any]:
    """Per task: questions, states by kind, sampled accuracy, unreadable share, generations, seconds."""
    out: dict[str, Any] = {}
    by_task: dict[str, list[QuestionData]] = {}
    for q in data:
        by_task.setdefault(q.task, []).append(q)
    for task, qs in sorted(by_task.items()):
        spec = TaskSpec.parse(task)
        records = {r.id: r for r in load_task(spec.task, partition="train")}
        finals = [(q, s) for q in qs for s in q.states if s.kind is CheckpointKind.FINAL]
        unreadable = sum(1 for q, s in finals if extract_final(records[q.record_id], s.answer or "") is None)
        labels = [q.states[0].label for q in qs]
        out[task] = {
            "questions": len(qs),
            "states": sum(len(q.states) for q in qs),
            "partial_states": sum(1 for q in qs for s in q.states if s.kind is CheckpointKind.PARTIAL),
            "final_states": len(finals),
            "sampled_accuracy": statistics.mean(labels),
            "questions_all_wrong": sum(1 for y in labels if y == 0.0) / len(qs),
            "questions_all_right": sum(1 for y in labels if y == 1.0) / len(qs),
            "unreadable_share": unreadable / len(finals) if finals else None,
            "generations": sum(q.generations for q in qs),
            "mean_seconds_per_question_in_flight": statistics.mean(q.seconds for q in qs),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("--dest", type=Path, required=True)
    ap.add_argument("--metrics-log", type=Path)
    ap.add_argument("--command", default="", help="the build-data command line, for the manifest")
    args = ap.parse_args()
    data = read_dataset([args.data])
    lines = b"".join(q.to_json().encode() + b"\n" for q in data)
    args.dest.mkdir(parents=True, exist_ok=True)
    gz = args.dest / "train.jsonl.gz"
    with gz.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as fh:
        fh.write(lines)
    if gz.stat().st_size > MAX_BYTES:
        raise SystemExit(f"{gz} is {gz.stat().st_size} bytes (> 20 MB): split it before committing")
    meta_path = args.data.with_name(args.data.name + ".meta.json")
    stats = task_stats(data)
    manifest = {
        **stamp(), "cpu": cpu_model(), "source": str(args.data), "command": args.command,
        "settings": json.loads(meta_path.read_text()) if meta_path.is_file() else None,
        "questions": len(data), "states": sum(len(q.states) for q in data),
        "generations": sum(q.generations for q in data),
        "sha256_jsonl": hashlib.sha256(lines).hexdigest(), "gz_bytes": gz.stat().st_size,
        "throughput": _tokens_per_s(args.metrics_log), "tasks": stats,
        "read_with": "gunzip -k train.jsonl.gz, then finece-guard train train.jsonl (or read_dataset)",
    }  # fmt: skip
    (args.dest / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    md = [
        f"# Monte-Carlo FineCE data: {args.dest.name}",
        "",
        f"Snapshot {manifest['date']} of `{args.data}` ({manifest['cpu']}): {len(data)} questions, "
        f"{manifest['states']} states, {manifest['generations']} generations; sha256 of the JSONL "
        f"`{manifest['sha256_jsonl'][:16]}…`. Command: `{args.command}`",
        "",
        "| task | questions | states | sampled accuracy | all-wrong q | all-right q | unreadable answers |",
        "|---|---|---|---|---|---|---|",
    ]
    for task, s in stats.items():
        unread = "-" if s["unreadable_share"] is None else f"{s['unreadable_share']:.1%}"
        md.append(f"| {task} | {s['questions']} | {s['states']} | {s['sampled_accuracy']:.3f} | "
                  f"{s['questions_all_wrong']:.0%} | {s['questions_all_right']:.0%} | {unread} |")  # fmt: skip
    tp = manifest["throughput"]
    if tp:
        md += ["", f"Server throughput over {tp['seconds']} s: {tp['generated_tokens_per_s']:.1f} generated tokens/s, "
               f"{tp['prompt_tokens_per_s']:.0f} prompt tokens/s ({tp['note']})."]  # fmt: skip
    (args.dest / "manifest.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
