"""Data construction cost: generations per question vs k, m and T (paper Alg. 1), on the real server.

Runs ``build_dataset`` on the same few train questions for a small grid (k varied at m=2, T=1;
the cap on m varied at k=4, T=1; T varied at k=4, m=2), one after the other on one server, and
records per setting: generations actually made, the k(1 + Σ m_t) the clusters called for, the
linear bound k(1 + m·T) and the full (exponential) tree k·Σ_t k^t that Alg. 1 avoids, states
produced, and wall time.

    make bench   (or: .venv/bin/python -m benchmarks.data_cost --base-url http://127.0.0.1:8011/v1)

Writes benchmarks/results/data_cost.json and .md.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.common import finish, stamp
from finece_guard.backends.openai_generator import OpenAICompatGenerator
from finece_guard.config import load_settings
from finece_guard.data.construction import ConstructionConfig, TaskSpec, build_dataset, read_dataset, select_questions
from finece_guard.embeddings import MiniLMEmbeddings

#: (k, cap on m, T)
GRID: tuple[tuple[int, int, int], ...] = (
    (2, 2, 1), (4, 2, 1), (8, 2, 1),  # k
    (4, 1, 1), (4, 3, 1),  # m
    (4, 2, 2), (4, 2, 3),  # T
)  # fmt: skip


async def run(base_url: str, n_questions: int, task: str) -> dict[str, Any]:
    settings = load_settings()
    questions = select_questions([TaskSpec.parse(task)], partition="train", limit=n_questions, seed=1)
    embedder = MiniLMEmbeddings()
    await asyncio.to_thread(embedder.load)
    client = OpenAICompatGenerator.from_settings(settings, base_url)
    rows: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for k, m, t in GRID:
                out = Path(tmp) / f"k{k}-m{m}-t{t}.jsonl"
                config = ConstructionConfig(k=k, levels=t, max_clusters=m, max_tokens=96, seed=0)
                report = await build_dataset(questions, out, sampler=client, embedder=embedder, config=config,
                                             concurrency=len(questions))  # fmt: skip
                data = read_dataset([out])
                n = max(1, len(data))
                rows.append({
                    "k": k, "m_cap": m, "T": t, "questions": len(data), "failed": len(report.failed),
                    "generations_per_q": sum(q.generations for q in data) / n,
                    "expected_per_q": sum(q.expected_generations for q in data) / n,
                    "linear_bound_per_q": sum(q.linear_bound for q in data) / n,
                    "full_tree_per_q": sum(q.full_tree for q in data) / n,
                    "states_per_q": sum(len(q.states) for q in data) / n,
                    "seconds_per_q": report.seconds / n,
                })  # fmt: skip
                print(rows[-1], flush=True)
    finally:
        await client.aclose()
    return {"task": task, "n_questions": n_questions, "grid": rows}


def markdown(result: dict[str, Any], header: list[str]) -> list[str]:
    lines = [*header, "", "| k | m (cap) | T | generations / q | k(1+Σm_t) | k(1+mT) | full tree | states / q | "
             "s / q |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in result["grid"]:
        lines.append(f"| {r['k']} | {r['m_cap']} | {r['T']} | {r['generations_per_q']:.1f} | {r['expected_per_q']:.1f} "
                     f"| {r['linear_bound_per_q']:.0f} | {r['full_tree_per_q']:.0f} | {r['states_per_q']:.1f} | "
                     f"{r['seconds_per_q']:.1f} |")  # fmt: skip
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-url", default="http://127.0.0.1:8011/v1")
    ap.add_argument("--questions", type=int, default=3)
    ap.add_argument("--task", default="sciq_mc")
    args = ap.parse_args()
    result = {**stamp(args.base_url), **asyncio.run(run(args.base_url, args.questions, args.task))}
    head = [f"# Data construction cost ({result['date']})", "", f"{result['machine']}; {args.questions} "
            f"{args.task} train questions per setting, all in flight together, temperature 0.8, max_tokens 96. "
            "m is a cap: the clustering may find fewer clusters, and short answers have fewer levels, so the "
            "k(1+mT) and full-tree columns use each question's own m (clusters found) and T (levels reached), "
            "averaged."]  # fmt: skip
    finish("data_cost", result, markdown(result, head))


if __name__ == "__main__":
    main()
