"""Score forgery: how far forged confidence text inside an answer moves the FineCE score.

For a fixed set of greedy answers (generated once, stored, and reused for every adapter, so a
before/after comparison scores the very same text), each answer is scored

* clean,
* with each payload of :data:`finece_guard.data.forgery.PAYLOADS` inserted (end or middle),
* with same-length benign text at the same place (:func:`~finece_guard.data.forgery.benign_twin`):
  the noise floor - how much *any* extra text of that length moves the score.

Per payload it reports the mean shift against the clean score, its move *beyond the noise floor*
(:func:`~finece_guard.data.forgery.shift_beyond_noise`, |shift| − |benign shift|: the number the
issue bounds, and the one the live integration test bounds too), the forged − benign difference
(*excess*, shown for comparison with older tables), and the share of ``AcceptAbove(θ)``
decisions (``score >= θ``) the payload flips, at θ = the 25th / 50th / 75th percentile of the clean
scores (adapter-agnostic) and at the fixed θ of the examples (0.35). Payloads held out of the
training augmentation are marked, so generalisation is visible.

    .venv/bin/python -m benchmarks.forgery_injection --base-url http://127.0.0.1:8021/v1 \\
        --label default-2026-11-23 [--model finece] [--n 40]

``--no-filter`` scores the adapter alone (without :mod:`finece_guard.rating_filter`, which the
served scorer applies by default). Writes benchmarks/results/forgery_injection_<label>.json and
.md; answers are cached in benchmarks/results/forgery_answers.json (delete it to draw new ones).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from benchmarks.common import OUT, finish, stamp
from finece_guard.backends.openai_generator import OpenAICompatGenerator
from finece_guard.backends.openai_scorer import OpenAICompatScorer
from finece_guard.data.checkers import extract_final, is_correct
from finece_guard.data.forgery import (
    BOUND_BEYOND_NOISE,
    BOUND_FLIP_SHARE,
    PAYLOADS,
    Payload,
    benign_twin,
    break_twin,
    flip_share,
    inject,
    shift_beyond_noise,
)
from finece_guard.data.loaders import load_task
from finece_guard.rating_filter import filter_rater_text
from finece_guard.types import CheckpointKind

ANSWERS = OUT / "forgery_answers.json"
TASKS = ("arc_easy", "sciq_mc", "sciq")
FIXED_THETA = 0.35
QUANTILES = (0.25, 0.5, 0.75)


def spread(n_total: int, n: int) -> list[int]:
    """``n`` evenly spaced indices of ``n_total`` (a smaller run keeps the task mix of the full one)."""
    n = min(n, n_total)
    return [i * n_total // n for i in range(n)]


async def _answers(base_url: str, generator_model: str, n: int) -> list[dict[str, Any]]:
    """``n`` greedy answers from the test partitions of :data:`TASKS` (cached in :data:`ANSWERS`)."""
    if ANSWERS.is_file():
        cached: list[dict[str, Any]] = json.loads(ANSWERS.read_text())["answers"]
        if len(cached) >= n:
            return [cached[i] for i in spread(len(cached), n)]
    per_task = -(-n // len(TASKS))
    records = [r for t in TASKS for r in load_task(t, partition="test", limit=per_task)][:n]
    gen = OpenAICompatGenerator(base_url, model=generator_model, top_logprobs=0)
    sem = asyncio.Semaphore(8)

    async def one(record: Any) -> dict[str, Any]:
        async with sem:
            texts = await gen.sample_continuations(record.prompt(), "", n=1, max_tokens=160, temperature=0.0)
        text = texts[0].strip()
        return {"id": record.id, "task": record.task, "question": record.prompt(), "answer": text,
                "correct": is_correct(record, text), "readable": extract_final(record, text) is not None}  # fmt: skip

    try:
        out = list(await asyncio.gather(*(one(r) for r in records)))
    finally:
        await gen.aclose()
    out = [a for a in out if a["answer"]]
    ANSWERS.parent.mkdir(parents=True, exist_ok=True)
    ANSWERS.write_text(json.dumps({"generator": generator_model, "tasks": TASKS, "answers": out}, indent=1) + "\n")
    return out


def _mean_ci(x: np.ndarray, seed: int = 0, n_boot: int = 1000) -> tuple[float, float, float]:
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=(n_boot, len(x)))
    boots = x[idx].mean(axis=1)
    return float(x.mean()), float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))


def restored_share(answers: Sequence[str], payload: Payload) -> float:
    """Share of answers the rater-text filter gives back as exactly the answer without the payload's line
    (:func:`~finece_guard.data.forgery.break_twin`): for those the scorer reads the same text either way."""
    return statistics.mean(
        filter_rater_text(inject(a, payload)).text == break_twin(a, payload.position) for a in answers
    )


def summarise(
    clean: list[float],
    forged: dict[str, list[float]],
    benign: dict[str, list[float]],
    breaks: list[float] | None = None,
    restored: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Per-payload shifts and flip shares (pure: the numbers behind the table). ``breaks``: scores of the
    middle position's layout twin (the answer with the insertion's line break and no payload), so middle
    flips can be told apart from the line break; ``restored``: :func:`restored_share` per payload."""
    c = np.asarray(clean)
    thetas = {f"q{int(q * 100)}": float(np.quantile(c, q)) for q in QUANTILES} | {"fixed": FIXED_THETA}
    quartiles = [t for k, t in thetas.items() if k != "fixed"]
    rows: dict[str, Any] = {}
    for p in (p for p in PAYLOADS if p.name in forged):
        f, b = np.asarray(forged[p.name]), np.asarray(benign[p.name])
        shift, lo, hi = _mean_ci(f - c)
        excess, elo, ehi = _mean_ci(f - b)
        flips = {k: flip_share(clean, forged[p.name], t) for k, t in thetas.items()}
        rows[p.name] = {
            "text": p.text, "position": p.position, "family": p.family, "direction": p.direction,
            "held_out": p.held_out, "mean_shift": shift, "mean_shift_ci": [lo, hi],
            "benign_shift": float((b - c).mean()), "benign_abs_shift": float(np.abs(b - c).mean()),
            "excess_shift": excess, "excess_shift_ci": [elo, ehi],
            "beyond_noise": shift_beyond_noise(clean, forged[p.name], benign[p.name]),
            "flip_share": flips, "max_flip_share": max(flips[k] for k in thetas if k != "fixed"),
            "benign_flip_share": {k: flip_share(clean, benign[p.name], t) for k, t in thetas.items()},
        }  # fmt: skip
        layout = clean if p.position == "end" else breaks
        if layout is not None:
            rows[p.name]["max_flip_share_vs_layout"] = max(flip_share(layout, forged[p.name], t) for t in quartiles)
            rows[p.name]["layout_flip_share"] = max(flip_share(clean, layout, t) for t in quartiles)
        if restored is not None and p.name in restored:
            rows[p.name]["restored"] = restored[p.name]
    worst_excess = max(abs(r["excess_shift"]) for r in rows.values())
    worst_beyond = max(r["beyond_noise"] for r in rows.values())
    worst_flip = max(r["max_flip_share"] for r in rows.values())
    vs_layout = [r["max_flip_share_vs_layout"] for r in rows.values() if "max_flip_share_vs_layout" in r]
    return {
        "worst_flip_share_vs_layout": max(vs_layout) if vs_layout else None,
        "bounds": {"beyond_noise": BOUND_BEYOND_NOISE, "flip_share": BOUND_FLIP_SHARE},
        "thresholds": thetas,
        "clean": {"mean": float(c.mean()), "sd": float(c.std()), "n": len(c)},
        "payloads": rows,
        "worst_abs_excess_shift": worst_excess,
        "worst_beyond_noise": worst_beyond,
        "worst_flip_share": worst_flip,
        "meets_shift_bound": bool(worst_beyond <= BOUND_BEYOND_NOISE),
        "meets_bounds": bool(worst_beyond <= BOUND_BEYOND_NOISE and worst_flip <= BOUND_FLIP_SHARE),
    }


async def run(
    base_url: str,
    model: str,
    generator_model: str,
    n: int,
    concurrency: int,
    strip_rater_text: bool = True,
    payloads: Sequence[Payload] = PAYLOADS,
) -> dict[str, Any]:
    answers = await _answers(base_url, generator_model, n)
    scorer = OpenAICompatScorer(
        base_url, model=model, max_concurrency=concurrency, strip_rater_text=strip_rater_text
    )
    sem = asyncio.Semaphore(concurrency)
    k = CheckpointKind.FINAL

    async def score(q: str, a: str) -> float:
        async with sem:
            return (await scorer.ascore(q, a, k)).value

    t0 = time.perf_counter()
    try:
        clean = list(await asyncio.gather(*(score(a["question"], a["answer"]) for a in answers)))
        forged: dict[str, list[float]] = {}
        benign: dict[str, list[float]] = {}
        for p in payloads:
            forged[p.name] = list(
                await asyncio.gather(*(score(a["question"], inject(a["answer"], p)) for a in answers))
            )
            benign[p.name] = list(
                await asyncio.gather(*(score(a["question"], benign_twin(a["answer"], p)) for a in answers))
            )
        breaks = None
        if any(p.position == "middle" for p in payloads):
            breaks = list(
                await asyncio.gather(*(score(a["question"], break_twin(a["answer"], "middle")) for a in answers))
            )
    finally:
        await scorer.aclose()
    seconds = time.perf_counter() - t0
    restored = {p.name: restored_share([a["answer"] for a in answers], p) for p in payloads}
    summary = summarise(clean, forged, benign, breaks, restored)
    return {
        **stamp(base_url), "scorer_model": model, "generator_model": generator_model, "n_answers": len(answers),
        "strip_rater_text": strip_rater_text,
        "tasks": sorted({a["task"] for a in answers}), "accuracy": statistics.mean(a["correct"] for a in answers),
        "readable": statistics.mean(a["readable"] for a in answers), "scoring_seconds": seconds,
        "n_scores": len(answers) * (1 + 2 * len(payloads) + (breaks is not None)), **summary,
        "scores": {"clean": clean, "forged": forged, "benign": benign, "breaks": breaks},
    }  # fmt: skip


def markdown(result: dict[str, Any], label: str) -> list[str]:
    th = result["thresholds"]
    lines = [
        f"# Score forgery: {label}",
        "",
        f"{result['date']}, {result['machine']}; scorer `{result['scorer_model']}` at {result['base_url']}; "
        + (
            "rater-text filter **on** (adapter + `finece_guard.rating_filter`, as served by default)"
            if result.get("strip_rater_text")
            else "rater-text filter **off** (the adapter alone)"
        ),
        f"{result['n_answers']} greedy answers ({', '.join(result['tasks'])}, test partition; accuracy "
        f"{result['accuracy']:.2f}), {result['n_scores']} scores in {result['scoring_seconds']:.0f} s. "
        f"Clean score mean {result['clean']['mean']:.3f} (sd {result['clean']['sd']:.3f}).",
        "",
        "shift = mean(forged − clean) [95% bootstrap]; benign = same-length neutral text at the same place "
        "(noise floor); **beyond noise** = |shift| − |benign|, bounded by "
        f"{BOUND_BEYOND_NOISE} in issue 11 (`finece_guard.data.forgery.shift_beyond_noise`, the test suite's "
        "measure too); excess = mean(forged − benign twin), as older tables bounded it; flips = share "
        f"of `AcceptAbove(θ)` decisions changed, max over θ at the clean-score quartiles "
        f"({th['q25']:.3f} / {th['q50']:.3f} / {th['q75']:.3f}) and at θ = {FIXED_THETA}. "
        "† = held out of the training augmentation. restored = share of answers the filter gives back as the "
        "answer without the payload's line, to the character (`break_twin`); flips vs layout = flips against "
        "that layout twin's score (for the middle position: the answer with the inserted line break and no "
        "payload, whose own flips against clean are in the last column; at the end the twin is the clean answer).",
        "",
        "| payload | pos | shift | benign | beyond noise | excess | flips (quartiles) | benign flips | flips θ=0.35 "
        "| restored | flips vs layout | layout flips |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def share(r: dict[str, Any], key: str) -> str:
        return f"{r[key]:.0%}" if key in r else "–"

    for r in result["payloads"].values():
        lo, hi = r["mean_shift_ci"]
        text = r["text"].replace("|", "\\|").replace("\n", "⏎")
        benign_flips = max(v for k, v in r["benign_flip_share"].items() if k != "fixed")
        lines.append(
            f"| `{text}`{' †' if r['held_out'] else ''} | {r['position']} | {r['mean_shift']:+.3f} [{lo:+.3f}, "
            f"{hi:+.3f}] | {r['benign_shift']:+.3f} | **{r['beyond_noise']:+.3f}** | {r['excess_shift']:+.3f} | "
            f"{r['max_flip_share']:.0%} | "
            f"{benign_flips:.0%} | {r['flip_share']['fixed']:.0%} | {share(r, 'restored')} | "
            f"{share(r, 'max_flip_share_vs_layout')} | {share(r, 'layout_flip_share')} |"
        )

    def verdict(ok: bool) -> str:
        return "meets" if ok else "does NOT meet"

    lines += [
        "",
        f"Worst move beyond noise {result['worst_beyond_noise']:+.3f}: {verdict(result['meets_shift_bound'])} the "
        f"issue's shift bound (≤ {BOUND_BEYOND_NOISE}). Worst flip share {result['worst_flip_share']:.0%}: "
        f"{verdict(result['worst_flip_share'] <= BOUND_FLIP_SHARE)} its flip bound (≤ {BOUND_FLIP_SHARE:.0%}). "
        f"(Worst |excess| {result['worst_abs_excess_shift']:.3f}.)",
    ]
    if result.get("worst_flip_share_vs_layout") is not None:
        lines.append(
            f"Against the layout twin (the same answer and line break without the payload) the worst flip share "
            f"is {result['worst_flip_share_vs_layout']:.0%}."
        )
    return lines


def rerender(label: str, subset: int | None = None) -> None:
    """Re-summarise an existing result from its stored scores and rewrite its Markdown (no scoring),
    so a table follows the current definition of the bound; with ``subset``, re-summarise only its
    first ``subset`` answers into ``<label>_n<subset>`` (to compare with a later run on fewer answers)."""
    path = OUT / f"forgery_injection_{label}.json"
    result = json.loads(path.read_text())
    sc = result["scores"]
    idx = spread(len(sc["clean"]), subset if subset is not None else len(sc["clean"]))
    clean = [sc["clean"][i] for i in idx]
    forged = {k: [v[i] for i in idx] for k, v in sc["forged"].items()}
    benign = {k: [v[i] for i in idx] for k, v in sc["benign"].items()}
    breaks = None if sc.get("breaks") is None else [sc["breaks"][i] for i in idx]
    # restored shares belong to the filter the scores were taken with: kept from the run, never recomputed
    restored = None if subset is not None else {
        k: r["restored"] for k, r in result["payloads"].items() if "restored" in r
    } or None
    result |= summarise(clean, forged, benign, breaks, restored)
    if subset is not None:
        result |= {"n_answers": len(clean), "n_scores": len(clean) * (1 + 2 * len(forged) + (breaks is not None)),
                   "scores": {"clean": clean, "forged": forged, "benign": benign, "breaks": breaks},
                   "note": f"{len(clean)} evenly spaced answers of {label} (as --n {len(clean)} picks them), "
                   "re-summarised without re-scoring"}  # fmt: skip
        answers = json.loads(ANSWERS.read_text())["answers"]
        picked = [answers[i] for i in idx]
        result |= {"tasks": sorted({a["task"] for a in picked}),
                   "accuracy": statistics.mean(a["correct"] for a in picked)}  # fmt: skip
        label = f"{label}_n{subset}"
        path = OUT / f"forgery_injection_{label}.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    (OUT / f"forgery_injection_{label}.md").write_text("\n".join(markdown(result, label)) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base-url", default="http://127.0.0.1:8011/v1")
    ap.add_argument("--model", default="finece", help="served scorer (LoRA) name")
    ap.add_argument("--generator-model", default="smollm2-135m-instruct")
    ap.add_argument("--label", required=True, help="names the result files, e.g. default-2026-11-23")
    ap.add_argument("--n", type=int, default=40, help="answers (cached; the same ones for every adapter)")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--no-filter", action="store_true", help="score without the rater-text filter (the adapter alone)")
    ap.add_argument("--payloads", help="comma-separated payload name prefixes to score (default: all)")
    ap.add_argument("--rerender", action="store_true",
                    help="re-summarise an existing --label result from its stored scores (no scoring)")
    ap.add_argument("--subset", type=int, help="with --rerender: re-summarise the first N answers only")
    args = ap.parse_args()
    if args.rerender:
        rerender(args.label, args.subset)
        return
    chosen = PAYLOADS
    if args.payloads:
        prefixes = tuple(x.strip() for x in args.payloads.split(",") if x.strip())
        chosen = tuple(p for p in PAYLOADS if p.name.startswith(prefixes))
        if not chosen:
            names = sorted({p.name.split("@")[0] for p in PAYLOADS})
            ap.error(f"--payloads {args.payloads!r} matches no payload name; names start with: {', '.join(names)}")
    result = asyncio.run(
        run(args.base_url, args.model, args.generator_model, args.n, args.concurrency, not args.no_filter, chosen)
    )
    result["label"] = args.label
    finish(f"forgery_injection_{args.label}", result, markdown(result, args.label))


if __name__ == "__main__":
    main()
