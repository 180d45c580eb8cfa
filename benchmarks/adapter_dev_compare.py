"""Several FineCE adapters on the same dev states: which one to ship (in-process, no server).

The trainer's own dev metrics compare an adapter with the untrained LoRA on *its* dev split; to
decide whether a new adapter replaces the default one, both must be scored on the same states.
This script rebuilds the trainer's dev split of the given data files (same hash, same
``--dev-fraction``), encodes the states exactly as training does, and for each adapter reports
the dev metrics (AUROC / ECE / Brier on complete answers, soft Brier per kind) and the dev
forgery check (mean score shift of a complete answer when one score-raising payload is added).

    .venv/bin/python -m benchmarks.adapter_dev_compare runs/data/train.jsonl \\
        --adapter old=finece_guard/adapters_data/SmolLM2-135M-Instruct --adapter new=runs/adapter-new \\
        --label 2026-12-01

Writes benchmarks/results/adapter_dev_compare_<label>.json and .md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from benchmarks.common import finish, stamp
from finece_guard.config import load_settings
from finece_guard.data.construction import read_dataset
from finece_guard.training.examples import examples_from, split_by_question
from finece_guard.training.forgery_check import forgery_pairs, forgery_shift
from finece_guard.training.trainer import PromptEncoder, dev_metrics, predict, resolve_base_model


def evaluate(data_files: list[Path], adapters: dict[str, Path], dev_fraction: float, max_length: int,
             seed: int) -> dict[str, Any]:  # fmt: skip
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _, dev_q = split_by_question(read_dataset(data_files), dev_fraction)
    dev_ex = examples_from(dev_q)
    base = resolve_base_model(None, load_settings().home)
    tokenizer = AutoTokenizer.from_pretrained(str(base.folder))
    enc = PromptEncoder(tokenizer, max_length)
    items = [e for e in (enc.encode(x) for x in dev_ex) if e is not None]
    pairs = [(enc.encode(c), enc.encode(f), f.payload or "", h) for c, f, h in forgery_pairs(dev_ex, seed=seed)]
    pairs_ok = [(c, f, n, h) for c, f, n, h in pairs if c is not None and f is not None]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    results: dict[str, Any] = {}
    for name, folder in adapters.items():
        t0 = time.perf_counter()
        model: Any = AutoModelForCausalLM.from_pretrained(str(base.folder), dtype=torch.float32)
        model = PeftModel.from_pretrained(model, str(folder)).eval()

        def run(xs: list[Any], model: Any = model) -> list[Any]:
            return predict(model, xs, enc.digit_ids, pad_id=pad, batch_size=8, device="cpu")

        metrics = dev_metrics(items, run(items))
        clean, forged = run([c for c, _, _, _ in pairs_ok]), run([f for _, f, _, _ in pairs_ok])
        metrics["forgery"] = forgery_shift([p.value for p in clean], [p.value for p in forged],
                                           [(n, h) for _, _, n, h in pairs_ok])  # fmt: skip
        metrics["seconds"] = round(time.perf_counter() - t0, 1)
        metrics["adapter"] = str(folder)
        results[name] = metrics
    return {"dev_questions": len(dev_q), "dev_states": len(items), "tasks": sorted({q.task for q in dev_q}),
            "adapters": results}  # fmt: skip


def _f(x: Any) -> str:
    return "-" if x is None else f"{x:.3f}"


def markdown(result: dict[str, Any], label: str) -> list[str]:
    lines = [
        f"# Adapters on the same dev states: {label}",
        "",
        f"{result['date']}, {result['machine']}. Data: {', '.join(result['data'])}; dev = trainer's hash split "
        f"(fraction {result['dev_fraction']}): {result['dev_questions']} questions, {result['dev_states']} states "
        f"({', '.join(result['tasks'])}). Complete-answer labels are 0/1 of sampled (T = 0.8) answers.",
        "",
        "| adapter | final AUROC | final ECE | final Brier | Brier~ all | Brier~ partial | Brier~ question | "
        "forgery shift | held-out payloads |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in result["adapters"].items():
        k = m["by_kind"]
        fin = k.get("final", {})
        lines.append(
            f"| {name} | {_f(fin.get('auroc'))} | {_f(fin.get('ece'))} | {_f(fin.get('brier'))} | "
            f"{_f(m.get('brier_soft'))} | {_f(k.get('partial', {}).get('brier_soft'))} | "
            f"{_f(k.get('question', {}).get('brier_soft'))} | {m['forgery']['mean_shift']:+.3f} | "
            f"{_f(m['forgery']['mean_shift_held_out_payloads'])} |"
        )
    lines += ["", "Brier~: against the soft Monte-Carlo label. forgery shift: mean(score with one score-raising "
              "payload − clean score) over the dev complete answers."]  # fmt: skip
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", nargs="+", type=Path)
    ap.add_argument("--adapter", action="append", required=True, help="name=folder, repeatable")
    ap.add_argument("--dev-fraction", type=float, default=0.1)
    ap.add_argument("--max-length", type=int, default=384)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--label", required=True)
    args = ap.parse_args()
    adapters = {}
    for spec in args.adapter:
        name, sep, folder = spec.partition("=")
        if not sep:
            raise SystemExit(f"--adapter {spec!r}: use name=folder")
        adapters[name] = Path(folder)
    result = {**stamp(), "data": [str(p) for p in args.data], "dev_fraction": args.dev_fraction,
              **evaluate(args.data, adapters, args.dev_fraction, args.max_length, args.seed)}  # fmt: skip
    finish(f"adapter_dev_compare_{args.label}", result, markdown(result, args.label))


if __name__ == "__main__":
    main()
