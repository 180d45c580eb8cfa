"""Retrieval-on-low-confidence: accuracy vs retrieval rate as the threshold moves, against random gating.

The main job's question: when the confidence of the answer written *without* retrieval is low,
retrieve the passage and regenerate; is a confidence gate worth having? For SciQ test questions
that have a support passage, the generator answers twice (greedy): without the passage and with
it. Each gate ranks the questions by a signal of the *first* (passage-less) run only:

* FineCE of the question alone (retrieve before generating: ``RetrieveBelow(θ, early=True)``);
* FineCE of the full passage-less answer (retrieve and regenerate after answering);
* FineCE+ of that answer (``--fusion``: a fitted :class:`~finece_guard.backends.fusion.FusionModel`,
  applied to the first ``--model``); several comma-separated ``--model`` adapters score the same answers;
* the best free single-pass signals of that answer: min and mean token probability;
* random gating (its expected accuracy at each rate), never / always retrieve, and the oracle;
* a *perfect confidence score* (expected): every wrong passage-less answer ranks below every right
  one, in random order within each group. It is the most any confidence score of that answer can
  gain; the oracle gains more because it also knows where the passage helps, which no confidence
  in the passage-less answer can tell. A gate's gain is judged against this ceiling.

Gating at rate r retrieves for the r·N questions with the lowest signal; accuracy counts the
passage answer where it retrieved and the passage-less one elsewhere. At r = 50% the gain over
random gating is reported with a paired bootstrap interval over questions (the issue's bar: ≥ 5
accuracy points).

    .venv/bin/python -m benchmarks.gating_curve --base-url http://127.0.0.1:8021/v1 --model cand \\
        --n 150 --label cand-2026-12-02 [--model cand,finece] [--fusion ADAPTER_DIR_OR_JSON]

``--from-json FILE`` reuses an earlier run's answers and scores; with ``--rescore-missing`` the ``--model``
adapters the file lacks score those same answers on ``--base-url`` (a new adapter against the old ones
without generating again).

Writes benchmarks/results/gating_curve_<label>.json, .md and .png (matplotlib, if installed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import OUT, finish, stamp
from finece_guard.backends.fusion import FusionModel
from finece_guard.backends.openai_generator import OpenAICompatGenerator, question_messages
from finece_guard.backends.openai_scorer import OpenAICompatScorer
from finece_guard.config import DEFAULT_GENERATOR
from finece_guard.data.checkers import is_correct
from finece_guard.data.construction import TaskSpec
from finece_guard.data.records import QARecord
from finece_guard.errors import MetricError
from finece_guard.evaluation.baselines import mean_token_prob, min_token_prob
from finece_guard.types import CheckpointKind, TokenEvent

RATES = tuple(round(0.05 * i, 2) for i in range(21))
MAX_TOKENS = 96
TIMEOUT_S = 300.0


async def _answer(generator: OpenAICompatGenerator, prompt: str) -> tuple[str, list[TokenEvent]]:
    """The greedy answer to ``prompt`` (one user message) and its tokens with logprobs."""
    tokens = [t async for t in generator.astream(question_messages(prompt), max_tokens=MAX_TOKENS)]
    return "".join(t.text for t in tokens), tokens


def _token_baseline(signal: Callable[[Sequence[TokenEvent]], float], tokens: Sequence[TokenEvent]) -> float:
    """A single-pass baseline of the answer; 0.5 (no information) for an answer without scored tokens."""
    try:
        return signal(tokens)
    except MetricError:
        return 0.5


async def _one(
    record: QARecord, generator: OpenAICompatGenerator, scorers: dict[str, OpenAICompatScorer]
) -> dict[str, Any]:
    plain, tokens = await _answer(generator, record.prompt())
    with_passage, _ = await _answer(generator, record.prompt(with_context=True))
    question = record.prompt()
    row: dict[str, Any] = {
        "id": record.id, "plain_correct": is_correct(record, plain),
        "passage_correct": is_correct(record, with_passage),
        "min_token_prob": _token_baseline(min_token_prob, tokens),
        "mean_token_prob": _token_baseline(mean_token_prob, tokens),
        "answer": plain, "answer_with_passage": with_passage,
        "logprobs": [t.logprob for t in tokens], "tokens": [t.text for t in tokens],
    }  # fmt: skip
    await _score_row(row, question, scorers)
    return row


async def _score_row(row: dict[str, Any], question: str, scorers: dict[str, OpenAICompatScorer]) -> None:
    """Each scorer's FineCE of the question alone and of the passage-less answer ``row["answer"]``, into ``row``."""
    for name, scorer in scorers.items():
        row[f"fine_ce_question[{name}]"] = (await scorer.ascore(question, None, CheckpointKind.QUESTION)).value
        row[f"fine_ce_full[{name}]"] = (await scorer.ascore(question, row["answer"], CheckpointKind.FINAL)).value


def accuracy_at(signal: np.ndarray, plain: np.ndarray, passage: np.ndarray, rate: float) -> float:
    """Accuracy when the ``rate`` share of questions with the lowest signal retrieve (ties: stable order)."""
    k = round(rate * len(signal))
    retrieve = np.zeros(len(signal), dtype=bool)
    retrieve[np.argsort(signal, kind="stable")[:k]] = True
    return float(np.where(retrieve, passage, plain).mean())


PERFECT = "perfect confidence (expected)"


def perfect_confidence_at(plain: np.ndarray, passage: np.ndarray, rate: float) -> float:
    """Expected accuracy when the wrong passage-less answers retrieve first (random order within each group)."""
    n = len(plain)
    k = round(rate * n)
    wrong = plain < 0.5
    n_wrong = int(wrong.sum())
    from_wrong, from_right = min(k, n_wrong), max(0, k - n_wrong)
    gained = from_wrong * float(passage[wrong].mean()) if n_wrong else 0.0
    right_kept = float(plain[~wrong].sum())
    if from_right:  # every wrong one retrieved; some right ones too, each at the right group's passage rate
        right_kept += from_right * (float(passage[~wrong].mean()) - 1.0)
    return (gained + right_kept) / n


def curves(rows: Sequence[dict[str, Any]], gates: Sequence[str]) -> dict[str, list[float]]:
    plain = np.asarray([r["plain_correct"] for r in rows], dtype=float)
    passage = np.asarray([r["passage_correct"] for r in rows], dtype=float)
    out = {g: [accuracy_at(np.asarray([r[g] for r in rows]), plain, passage, rate) for rate in RATES] for g in gates}
    out["random (expected)"] = [float(plain.mean() + rate * (passage.mean() - plain.mean())) for rate in RATES]
    gain = passage - plain  # the oracle retrieves where it helps most
    out["oracle"] = [accuracy_at(-gain, plain, passage, rate) for rate in RATES]
    out[PERFECT] = [perfect_confidence_at(plain, passage, rate) for rate in RATES]
    return out


def gain_at_half(rows: Sequence[dict[str, Any]], gate: str, n_boot: int = 1000, seed: int = 0) -> list[float]:
    """Accuracy of ``gate`` (a row key, or :data:`PERFECT`) at a 50% retrieval rate minus random gating's,
    with a bootstrap interval."""
    plain = np.asarray([r["plain_correct"] for r in rows], dtype=float)
    passage = np.asarray([r["passage_correct"] for r in rows], dtype=float)
    signal = None if gate == PERFECT else np.asarray([r[gate] for r in rows], dtype=float)

    def stat(idx: np.ndarray) -> float:
        p, q = plain[idx], passage[idx]
        acc = perfect_confidence_at(p, q, 0.5) if signal is None else accuracy_at(signal[idx], p, q, 0.5)
        return acc - float(p.mean() + 0.5 * (q.mean() - p.mean()))

    rng = np.random.default_rng(seed)
    boots = [stat(rng.integers(0, len(rows), len(rows))) for _ in range(n_boot)]
    return [stat(np.arange(len(rows))), float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))]


def _plot(curve: dict[str, list[float]], path: Path, title: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, ys in curve.items():
        style = "--" if name in ("random (expected)", "oracle", PERFECT) else "-"
        ax.plot([100 * r for r in RATES], [100 * y for y in ys], style, label=name)
    ax.set_xlabel("retrieval rate (%)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _records() -> list[QARecord]:
    """The SciQ test questions that have a support passage, in file order (the curve's questions)."""
    return TaskSpec("sciq", with_context=True).records("test")


def _scorers(base_url: str, models: Sequence[str], concurrency: int) -> dict[str, OpenAICompatScorer]:
    return {m: OpenAICompatScorer(base_url, model=m, timeout_s=TIMEOUT_S, max_concurrency=concurrency) for m in models}


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    records = _records()[: args.n]
    generator = OpenAICompatGenerator(args.base_url, model=args.generator, timeout_s=TIMEOUT_S,
                                      max_concurrency=args.concurrency)  # fmt: skip
    scorers = _scorers(args.base_url, args.model.split(","), args.concurrency)
    sem = asyncio.Semaphore(args.concurrency)

    async def guarded(r: QARecord) -> dict[str, Any]:
        async with sem:
            return await _one(r, generator, scorers)

    try:
        rows = list(await asyncio.gather(*(guarded(r) for r in records)))
    finally:
        for scorer in scorers.values():
            await scorer.aclose()
        await generator.aclose()
    return rows


async def rescore_rows(rows: list[dict[str, Any]], base_url: str, models: Sequence[str], concurrency: int) -> None:
    """Score the saved answers of ``rows`` (an earlier result file's) with the scorer ``models`` too, in place.

    A new adapter is then compared with the earlier ones on the very same answers (greedy answers can
    change with what the server batches beside them)."""
    prompts = {r.id: r.prompt() for r in _records()}
    unknown = [row["id"] for row in rows if row["id"] not in prompts]
    if unknown:
        raise SystemExit(f"saved rows {unknown[:3]} are not SciQ test questions with a passage; re-run without "
                         "--from-json")  # fmt: skip
    scorers = _scorers(base_url, models, concurrency)
    sem = asyncio.Semaphore(concurrency)

    async def one(row: dict[str, Any]) -> None:
        async with sem:
            await _score_row(row, prompts[row["id"]], scorers)

    try:
        await asyncio.gather(*(one(row) for row in rows))
    finally:
        for scorer in scorers.values():
            await scorer.aclose()


def scorer_models(arg: str | None, saved: dict[str, Any] | None) -> str:
    """The ``--model`` list: as given, else the one an earlier result file (``--from-json``) was scored with."""
    if arg:
        return arg
    return str(saved.get("scorer_model") or "finece") if saved is not None else "finece"


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--model", help="served scorer (LoRA) names, comma-separated (same answers); default finece, "
                    "or with --from-json the models of that file")  # fmt: skip
    ap.add_argument("--generator", default=DEFAULT_GENERATOR)
    ap.add_argument("--n", type=int, default=150)
    ap.add_argument("--concurrency", type=int, default=6)
    ap.add_argument("--fusion", type=Path)
    ap.add_argument("--label", required=True)
    ap.add_argument("--from-json", type=Path, help="reuse the answers and scores of an earlier result file")
    ap.add_argument("--rescore-missing", action="store_true",
                    help="with --from-json: score its saved answers with the --model adapters it lacks")  # fmt: skip
    args = ap.parse_args(argv)
    saved = json.loads(args.from_json.read_text()) if args.from_json is not None else None
    args.model = scorer_models(args.model, saved)
    models = args.model.split(",")
    if saved is not None:  # e.g. to add FineCE+ once a fusion model has been fit
        rows: list[dict[str, Any]] = saved["rows"]
        missing = [m for m in models if f"fine_ce_full[{m}]" not in rows[0]]
        if missing and not args.rescore_missing:
            ap.error(f"--model {','.join(missing)}: not in {args.from_json} (it has {saved.get('scorer_model')}); "
                     "add --rescore-missing to score its answers with them on --base-url")  # fmt: skip
        if missing:
            asyncio.run(rescore_rows(rows, args.base_url, missing, args.concurrency))
    else:
        rows = asyncio.run(run(args))
    fusion = FusionModel.load(args.fusion) if args.fusion else None
    for row in rows:
        if fusion is not None:
            full = row[f"fine_ce_full[{models[0]}]"]
            row[f"fine_ce_plus_full[{models[0]}]"] = fusion.fuse(full, row["logprobs"], row["tokens"], final=True)
    gates = [f"fine_ce_{what}[{m}]" for m in models for what in ("question", "full")]
    gates += ["min_token_prob", "mean_token_prob"]
    if fusion is not None:
        gates.append(f"fine_ce_plus_full[{models[0]}]")
    curve = curves(rows, gates)
    gains = {g: gain_at_half(rows, g) for g in [*gates, PERFECT]}
    plain = float(np.mean([r["plain_correct"] for r in rows]))
    passage = float(np.mean([r["passage_correct"] for r in rows]))
    png = OUT / f"gating_curve_{args.label}.png"
    plotted = _plot(curve, png, f"SciQ test, n={len(rows)}: retrieval-on-low-confidence ({args.label})")
    result = {**stamp(args.base_url), "scorer_model": args.model, "n": len(rows), "accuracy_without_passage": plain,
              "accuracy_with_passage": passage, "rates": list(RATES), "curves": curve, "gain_over_random_at_50": gains,
              "fusion": str(args.fusion) if args.fusion else None, "rows": rows}  # fmt: skip
    half = RATES.index(0.5)
    md = [f"## Gating curve: {args.label}", "",
          f"{result['machine']}; {result['date']}; scorer `{args.model}`; {len(rows)} SciQ test questions with a "
          f"support passage; greedy, ≤ {MAX_TOKENS} tokens. Accuracy without the passage {plain:.3f}, with it "
          f"{passage:.3f} (always retrieve)."
          + (f" Answers and scores reused from `{args.from_json}`." if args.from_json else ""), "",
          "| gate (signal of the passage-less run) | accuracy at 25% | at 50% | at 75% "
          "| gain over random at 50% [95% CI] |",
          "|---|---|---|---|---|"]  # fmt: skip
    for name, ys in curve.items():
        g = gains.get(name)
        gain = f"{100 * g[0]:+.1f} pts [{100 * g[1]:+.1f}, {100 * g[2]:+.1f}]" if g else "-"
        md.append(f"| {name} | {ys[RATES.index(0.25)]:.3f} | {ys[half]:.3f} | {ys[RATES.index(0.75)]:.3f} | {gain} |")
    ceiling = gains[PERFECT][0]
    best = max(gates, key=lambda g: gains[g][0])
    md += ["", f"A perfect confidence score of the passage-less answer would gain {100 * ceiling:+.1f} points at 50% "
           f"(the issue's bar is +5.0); the best gate here, `{best}`, gains {100 * gains[best][0]:+.1f}"
           + (f", {gains[best][0] / ceiling:.0%} of that ceiling." if ceiling > 0 else ".")]  # fmt: skip
    if plotted:
        md += ["", f"![gating curve]({png.name})"]
    finish(f"gating_curve_{args.label}", result, md)


if __name__ == "__main__":
    main()
