"""How noisy are the Monte-Carlo labels FineCE trains on, and how much of their spread is signal?

Issue 11, lever 5. A question or partial state is labelled with the fraction of its k sampled
continuations that end correct (paper Alg. 1), so its label is a binomial estimate of the
state's true success probability p. For k samples, ``p̂(1 − p̂)/(k − 1)`` is an unbiased estimate of
that sampling variance; averaged over states and set against the labels' total variance it gives
the **noise share** of the label variance, and ``reliability = 1 − noise share`` is the squared
correlation with the labels that even a perfect predictor of p could reach. Complete answers are
labelled 0/1 by the answer checker: no sampling noise, only checker error.

Effect on training: the mean sampling variance is the **Brier floor** against the soft labels — a
scorer that predicts every state's true p exactly still has this squared error — so the training
log's dev ``brier_soft`` is read against it. The table also says which k would make the labels 90%
reliable, at this data's true spread of p.

    .venv/bin/python -m benchmarks.label_noise [data_builds/smollm2-2026-12-01/train.jsonl.gz] [--adapter DIR]

Writes benchmarks/results/label_noise.json and .md.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import finish, jsonl_records, stamp
from finece_guard.backends.model_store import DEFAULT_MODEL_NAME
from finece_guard.backends.stack import bundled_adapter

DEFAULT_DATA = Path("data_builds/smollm2-2026-12-01/train.jsonl.gz")
RELIABILITY_GOAL = 0.9


def noise_stats(labels: Sequence[float], ks: Sequence[int]) -> dict[str, Any]:
    """Sampling-noise summary of binomial fraction labels (each ``labels[i]`` a fraction of ``ks[i]`` samples)."""
    p = np.asarray(labels, dtype=float)
    k = np.asarray(ks, dtype=float)
    if p.size < 2 or np.any(k < 2):
        raise ValueError("need at least two states, each with k >= 2 samples")
    noise = float(np.mean(p * (1 - p) / (k - 1)))  # unbiased per state
    total = float(np.var(p, ddof=1))
    true_var = max(total - noise, 0.0)
    reliability = true_var / total if total > 0 else float("nan")
    # k at which the noise variance E[p(1-p)]/k leaves RELIABILITY_GOAL of the variance to p itself
    mean_pq = float(np.mean(p * (1 - p) * k / (k - 1)))
    # reliability V / (V + m/k) >= R  <=>  k >= m R / (V (1 - R))
    k_needed = math.ceil(mean_pq * RELIABILITY_GOAL / (true_var * (1 - RELIABILITY_GOAL))) if true_var > 0 else None
    return {
        "n_states": int(p.size),
        "k": sorted({int(x) for x in k}),
        "mean_label": float(p.mean()),
        "label_variance": total,
        "noise_variance": noise,
        "noise_share": noise / total if total > 0 else float("nan"),
        "reliability": reliability,
        "mean_binomial_se": float(np.mean(np.sqrt(p * (1 - p) / (k - 1)))),
        "brier_floor": noise,
        "k_for_reliability_goal": k_needed,
    }


def _share(value: float) -> str:
    return "n/a (every label equal)" if math.isnan(value) else f"{value:.0%}"


def collect(path: Path) -> dict[str, dict[str, tuple[list[float], list[int]]]]:
    """task -> state kind -> (labels, sample counts) of the sampled (question and partial) states."""
    out: dict[str, dict[str, tuple[list[float], list[int]]]] = {}
    for record in jsonl_records(path):
        for state in record["states"]:
            if state["kind"] == "final":
                continue
            for task in (record["task"], "pooled"):
                labels, ks = out.setdefault(task, {}).setdefault(state["kind"], ([], []))
                labels.append(float(state["label"]))
                ks.append(int(state["n_samples"]))
    return out


def _dev_brier(adapter: Path | None) -> dict[str, float]:
    """The adapter's dev ``brier_soft`` per sampled state kind, from its manifest (empty when absent)."""
    if adapter is None or not (adapter / "finece_manifest.json").is_file():
        return {}
    after = json.loads((adapter / "finece_manifest.json").read_text())["extra"]["dev_metrics"]["after"]["by_kind"]
    return {kind: float(after[kind]["brier_soft"]) for kind in ("question", "partial") if kind in after}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", nargs="?", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--adapter", type=Path, default=None, help="default: the shipped default adapter")
    args = parser.parse_args(argv)
    adapter = args.adapter or bundled_adapter(DEFAULT_MODEL_NAME)
    dev = _dev_brier(adapter)
    meta = stamp()
    groups = collect(args.data)
    rows = [
        {"task": task, "kind": kind, **noise_stats(*groups[task][kind])}
        for task in sorted(groups, key=lambda t: (t == "pooled", t))
        for kind in ("question", "partial")
        if kind in groups[task] and len(groups[task][kind][0]) >= 2
    ]
    md = [
        "# Label noise of the Monte-Carlo training labels",
        "",
        f"{meta['date']}; data `{args.data}`; question and partial states (labels = fraction of k sampled "
        "continuations that end correct). Noise share = mean binomial variance p̂(1−p̂)/(k−1) over the labels' "
        "variance; reliability = 1 − noise share (the squared correlation a perfect predictor of the true p "
        "could reach); Brier floor = the squared error that predictor still has against these labels.",
        "",
        "| task | kind | states | mean label | label sd | binomial se | noise share | reliability | Brier floor "
        f"| k for {RELIABILITY_GOAL:.0%} reliability |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    md += [
        f"| {r['task']} | {r['kind']} | {r['n_states']} | {r['mean_label']:.3f} | {math.sqrt(r['label_variance']):.3f} "
        f"| {r['mean_binomial_se']:.3f} | {_share(r['noise_share'])} | {_share(r['reliability'])} "
        f"| {r['brier_floor']:.4f} "
        f"| {r['k_for_reliability_goal'] if r['k_for_reliability_goal'] is not None else 'n/a'} |"
        for r in rows
    ]
    if dev:
        shown = adapter.relative_to(Path.cwd()) if adapter.is_relative_to(Path.cwd()) else adapter
        md += ["", f"Shipped adapter (`{shown}`), dev `brier_soft` from its manifest against the pooled floor:"]
        pooled = {r["kind"]: r for r in rows if r["task"] == "pooled"}
        md += [
            f"- {kind}: {value:.4f} vs floor {pooled[kind]['brier_floor']:.4f} "
            f"(reducible part {value - pooled[kind]['brier_floor']:.4f})"
            for kind, value in dev.items()
            if kind in pooled
        ]
    finish("label_noise", {"stamp": meta, "data": str(args.data), "rows": rows, "adapter_dev_brier": dev}, md)


if __name__ == "__main__":
    main()
