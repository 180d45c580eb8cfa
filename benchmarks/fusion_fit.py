"""FineCE+ (fusion) beside raw FineCE and the single-pass baselines, on the same eval records.

Fits :class:`finece_guard.backends.fusion.FusionModel` on the partial and complete states of the
*dev* records (``--dev``), or, without dev records, by 5-fold cross-fitting on the test records
(folds by question, each answer predicted by a model that never saw it; said so in the result).
Then reports, on the test records, AUROC / ECE / Brier with bootstrap intervals for raw FineCE,
FineCE+ and every baseline, at the full answer and at p(1) (the first partial checkpoint of a
strategy, against min / mean token probability of the very same prefix), pooled and per task, and
the paired AUROC difference FineCE+ (and raw FineCE) minus the best single-pass baseline.

    .venv/bin/python -m benchmarks.fusion_fit --test runs/x/eval/records-test.jsonl \\
        [--dev runs/x/eval/records-dev.jsonl] --label cand-2026-12-02 [--save-model ADAPTER_DIR]

Writes benchmarks/results/fusion_<label>.json and .md.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import finish, stamp
from finece_guard.backends.fusion import FEATURES, FusionModel, fit_fusion, state_features
from finece_guard.errors import MetricError
from finece_guard.evaluation.baselines import mean_token_prob, min_token_prob
from finece_guard.evaluation.records import AnswerRecord, read_records
from finece_guard.metrics import auroc_unchecked, bootstrap, bootstrap_indices, brier, ece
from finece_guard.types import TokenEvent

#: baselines that need no extra request (computed from the greedy answer's own token probabilities)
SINGLE_PASS = ("first_prob", "mean_token_prob", "min_token_prob", "mean_entropy", "deepconf_lgc")
OTHERS = ("p_true", "verbalized", "self_consistency")
#: A FineCE+ predictor: (record, features of one of its states) -> probability the answer ends up correct.
Predict = Callable[[AnswerRecord, list[float]], float]


def prefix_prob(record: AnswerRecord, n: int, how: str) -> float:
    """The single-pass baseline (min or mean token probability) of the answer's first ``n`` tokens."""
    known = [TokenEvent(i, "", lp) for i, lp in enumerate(record.token_logprobs[:n]) if lp is not None]
    if not known:
        return 0.5
    return min_token_prob(known) if how == "min" else mean_token_prob(known)


def _states(record: AnswerRecord) -> list[tuple[list[float], float]]:
    """(features, weight) of the record's partial states (weights sum to 1) and its final state (1)."""
    partial = [s for s in record.states if s.kind == "partial"]
    rows = [
        (state_features(s.value, record.token_logprobs[: s.n_tokens], record.tokens[: s.n_tokens], final=False),
         1.0 / len(partial))
        for s in partial
    ]  # fmt: skip
    rows.append((_final_features(record), 1.0))
    return rows


def _final_features(record: AnswerRecord) -> list[float]:
    return state_features(record.full_score, record.token_logprobs, record.tokens, final=True)


def training_rows(
    records: Sequence[AnswerRecord],
    extend: Callable[[AnswerRecord, list[float]], list[float]] = lambda r, feats: feats,
) -> tuple[list[list[float]], list[bool], list[float]]:
    """(features, label, weight) columns of every state the fusion is fit on; ``extend`` may add features."""
    rows, labels, weights = [], [], []
    for r in records:
        for feats, w in _states(r):
            rows.append(extend(r, feats))
            labels.append(r.correct)
            weights.append(w)
    return rows, labels, weights


def _fit(records: Sequence[AnswerRecord], meta: dict[str, Any]) -> FusionModel:
    rows, labels, weights = training_rows(records)
    return fit_fusion(rows, labels, weights=weights, meta=meta)


def _p1(record: AnswerRecord, strategy: str) -> tuple[int, float] | None:
    trace = record.strategies.get(strategy)
    if trace is None or trace.n_partial < 1:
        return None
    return trace.n_tokens[1], trace.raw[1]


def _p1_tokens(records: Sequence[AnswerRecord], strategy: str) -> list[int | None]:
    """Per record, the token count at its p(1) checkpoint (None where the strategy has no partial one)."""
    return [(_p1(r, strategy) or (None, 0.0))[0] for r in records]


def _columns(records: Sequence[AnswerRecord], predict: Predict, strategy: str) -> dict[str, dict[str, list[float]]]:
    """Per position (full, p1): method -> values aligned with records (NaN where undefined)."""
    full: dict[str, list[float]] = {"FineCE (raw)": [], "FineCE+ (fused)": []}
    p1: dict[str, list[float]] = {"FineCE (raw)": [], "FineCE+ (fused)": [], "min_token_prob": [],
                                  "mean_token_prob": []}  # fmt: skip
    for name in (*SINGLE_PASS, *OTHERS):
        full[name] = []
    for r in records:
        full["FineCE (raw)"].append(r.full_score)
        full["FineCE+ (fused)"].append(predict(r, _final_features(r)))
        for name in (*SINGLE_PASS, *OTHERS):
            v = r.baselines.get(name)
            full[name].append(float("nan") if v is None else float(v))
        at = _p1(r, strategy)
        if at is None:
            for k in p1:
                p1[k].append(float("nan"))
            continue
        n, raw = at
        p1["FineCE (raw)"].append(raw)
        feats = state_features(raw, r.token_logprobs[:n], r.tokens[:n], final=False)
        p1["FineCE+ (fused)"].append(predict(r, feats))
        p1["min_token_prob"].append(prefix_prob(r, n, "min"))
        p1["mean_token_prob"].append(prefix_prob(r, n, "mean"))
    return {"full": full, "p1": p1}


def _metrics(values: Sequence[float], labels: Sequence[bool], n_boot: int) -> dict[str, Any]:
    keep = [i for i, v in enumerate(values) if not math.isnan(v)]
    c = np.asarray([values[i] for i in keep])
    y = np.asarray([labels[i] for i in keep], dtype=int)
    out: dict[str, Any] = {"n": len(keep)}
    try:
        iv = bootstrap(auroc_unchecked, c, y, n_resamples=n_boot)
        out["auroc"] = [iv.value, iv.low, iv.high]
    except MetricError as exc:
        out["auroc"] = None
        out["auroc_error"] = str(exc)
    if len(keep):
        out["ece"] = ece(c, y)
        out["brier"] = brier(c, y)
    return out


def _paired(a: Sequence[float], b: Sequence[float], labels: Sequence[bool], n_boot: int) -> list[float] | None:
    keep = [i for i in range(len(a)) if not (math.isnan(a[i]) or math.isnan(b[i]))]
    ca, cb = np.asarray([a[i] for i in keep]), np.asarray([b[i] for i in keep])
    y = np.asarray([labels[i] for i in keep], dtype=int)
    try:
        point = auroc_unchecked(ca, y) - auroc_unchecked(cb, y)
        lo, hi, _ = bootstrap_indices(
            lambda idx: auroc_unchecked(ca[idx], y[idx]) - auroc_unchecked(cb[idx], y[idx]), len(keep),
            n_resamples=n_boot,
        )  # fmt: skip
    except MetricError:
        return None
    return [point, lo, hi]


def abort_at(values: Sequence[float], records: Sequence[AnswerRecord], at: Sequence[int | None],
             theta: float) -> dict[str, Any]:  # fmt: skip
    """Abort at p(1) when its score < ``theta``: the share of correct answers lost and the share of the
    tokens of eventually-wrong answers saved (tokens after p(1) that an abort there does not generate)."""
    idx = [i for i, v in enumerate(values) if not math.isnan(v) and at[i] is not None]
    correct = [i for i in idx if records[i].correct]
    wrong = [i for i in idx if not records[i].correct]
    wrong_tokens = sum(records[i].n_tokens for i in wrong) or 1
    lost = sum(values[i] < theta for i in correct) / max(len(correct), 1)
    saved = sum(records[i].n_tokens - (at[i] or 0) for i in wrong if values[i] < theta) / wrong_tokens
    return {"theta": theta, "correct_lost": lost, "wrong_tokens_saved": saved, "n": len(idx)}


def early_abort(values: Sequence[float], records: Sequence[AnswerRecord], at: Sequence[int | None],
                max_correct_lost: float = 0.05) -> dict[str, Any]:  # fmt: skip
    """The largest θ of :func:`abort_at` on these very records that loses ≤ ``max_correct_lost`` of the
    correct answers (chosen in hindsight: an upper bound; ``--dev`` also reports θ chosen on dev)."""
    idx = [i for i, v in enumerate(values) if not math.isnan(v) and at[i] is not None]
    best: dict[str, Any] = {"theta": None, "correct_lost": 0.0, "wrong_tokens_saved": 0.0, "n": len(idx)}
    for theta in [*sorted({values[i] for i in idx}), float("inf")]:
        found = abort_at(values, records, at, theta)
        if found["correct_lost"] > max_correct_lost:
            break
        if found["wrong_tokens_saved"] >= best["wrong_tokens_saved"]:
            best = found
    return best


def _fit_predict(records: Sequence[AnswerRecord]) -> Predict:
    model = _fit(records, {})
    return lambda r, feats: model.predict(feats)


def _cross_fit(records: Sequence[AnswerRecord], fit: Callable[[Sequence[AnswerRecord]], Predict] = _fit_predict
               ) -> Predict:  # fmt: skip
    """FineCE+ predictions by 5-fold cross-fitting (folds by question): no record is scored by a model it fit.
    ``fit`` makes a predictor from records (default: :func:`_fit`, the shipped features)."""
    keys = sorted({r.key for r in records})
    fold_of = {k: i % 5 for i, k in enumerate(keys)}
    folds = {f: fit([r for r in records if fold_of[r.key] != f]) for f in range(5)}

    def predict(r: AnswerRecord, feats: list[float]) -> float:
        return folds[fold_of[r.key]](r, feats)

    return predict


def _dev_thetas(dev: Sequence[AnswerRecord], strategy: str) -> dict[str, float | None]:
    """Per p(1) signal, the early-abort θ chosen on the dev records (FineCE+ cross-fitted on dev, so its
    dev values are out-of-sample like the test ones); applied unchanged to the test records."""
    cols = _columns(dev, _cross_fit(dev), strategy)["p1"]
    at = _p1_tokens(dev, strategy)
    return {name: early_abort(vals, dev, at)["theta"] for name, vals in cols.items()}


def _fmt(iv: list[float] | None) -> str:
    return "n/a" if iv is None else f"{iv[0]:.3f} [{iv[1]:.3f}, {iv[2]:.3f}]"


def _section(title: str, cols: dict[str, list[float]], labels: list[bool], n_boot: int,
             single: Sequence[str]) -> tuple[dict[str, Any], list[str]]:  # fmt: skip
    metrics = {name: _metrics(vals, labels, n_boot) for name, vals in cols.items()}
    defined = [s for s in single if metrics[s].get("auroc")]
    best = max(defined, key=lambda s: metrics[s]["auroc"][0]) if defined else None
    # the answers where the position exists (p(1) only where the strategy has a partial checkpoint)
    at = [y for y, v in zip(labels, cols["FineCE (raw)"], strict=True) if not math.isnan(v)]
    accuracy = f"{np.mean(at):.3f}" if at else "n/a"
    lines = [f"#### {title} (n = {len(at)} of {len(labels)} answers, accuracy {accuracy})", "",
             "| method | n | AUROC ↑ | ECE ↓ | Brier ↓ |", "|---|---|---|---|---|"]  # fmt: skip
    for name, m in metrics.items():
        ece_s = f"{m['ece']:.3f}" if "ece" in m else "n/a"
        brier_s = f"{m['brier']:.3f}" if "brier" in m else "n/a"
        lines.append(
            f"| {name}{' (best single-pass)' if name == best else ''} | {m['n']} | {_fmt(m['auroc'])} | {ece_s} "
            f"| {brier_s} |"
        )
    diffs: dict[str, Any] = {"best_single_pass": best}
    if best is not None:
        for ours in ("FineCE (raw)", "FineCE+ (fused)"):
            diffs[ours] = _paired(cols[ours], cols[best], labels, n_boot)
            lines.append(f"\n{ours} − {best}: AUROC {_fmt(diffs[ours])} (paired bootstrap)")
    section = {"n": len(at), "accuracy": float(np.mean(at)) if at else None, "metrics": metrics, "differences": diffs}
    return section, [*lines, ""]


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--test", type=Path, required=True)
    ap.add_argument("--dev", type=Path)
    ap.add_argument("--label", required=True)
    ap.add_argument("--strategy", default="paragraph", help="strategy whose first partial checkpoint is p(1)")
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--save-model", type=Path, help="write the model fit on dev (folder: its finece_fusion.json)")
    args = ap.parse_args(argv)

    test = read_records(args.test)
    dev_thetas: dict[str, float | None] = {}
    if args.dev is not None:
        dev = read_records(args.dev)
        model = _fit(dev, {"fit_on": str(args.dev), "records": len(dev)})
        dev_thetas = _dev_thetas(dev, args.strategy)

        def predict(r: AnswerRecord, feats: list[float]) -> float:
            return model.predict(feats)

        how = f"fit on {len(dev)} dev records ({args.dev})"
        if args.save_model is not None:
            model.save(args.save_model)
    else:
        predict = _cross_fit(test)
        how = (
            "5-fold cross-fitting on the test records "
            "(no dev records given; each answer scored by a model that never saw it)"
        )
        model = None

    result: dict[str, Any] = {**stamp(), "test": str(args.test), "fusion": how, "features": list(FEATURES),
                              "strategy_p1": args.strategy, "sections": {}}  # fmt: skip
    md = [f"## FineCE+ (fusion) vs raw FineCE and baselines: {args.label}", "",
          f"{result['machine']}; {result['date']}. Test records: `{args.test}` ({len(test)} answers). "
          f"Fusion: {how}. Features: {', '.join(FEATURES)}. p(1): first partial checkpoint of "
          f"`{args.strategy}`, compared with min / mean token probability of the same prefix.", ""]  # fmt: skip
    groups = {"pooled": test, **{t: [r for r in test if r.task == t] for t in sorted({r.task for r in test})}}
    for gname, recs in groups.items():
        labels = [r.correct for r in recs]
        cols = _columns(recs, predict, args.strategy)
        md.append(f"### {gname}")
        md.append("")
        for pos, single in (("full", SINGLE_PASS), ("p1", ("min_token_prob", "mean_token_prob"))):
            title = "full answer" if pos == "full" else "p(1)"
            sec, lines = _section(f"{gname}: {title}", cols[pos], labels, args.bootstrap, single)
            result["sections"][f"{gname}/{pos}"] = sec
            md += lines
        at = _p1_tokens(recs, args.strategy)
        aborts = {name: early_abort(vals, recs, at) for name, vals in cols["p1"].items()}
        from_dev = {
            name: abort_at(vals, recs, at, theta)
            for name, vals in cols["p1"].items()
            if (theta := dev_thetas.get(name)) is not None
        }
        result["sections"][f"{gname}/early_abort"] = aborts
        result["sections"][f"{gname}/early_abort_dev_theta"] = from_dev
        md += [f"#### {gname}: early abort at p(1) (≤ 5% of correct answers lost)", "",
               "θ in hindsight: the best θ on these test answers (an upper bound)"
               + ("; θ from dev: chosen the same way on the dev records, then applied here" if from_dev else "")
               + ".", "",
               "| signal at p(1) | θ (hindsight) | correct lost | tokens of wrong answers saved "
               + ("| θ from dev | correct lost | tokens saved |" if from_dev else "|"),
               "|---|---|---|---|" + ("---|---|---|" if from_dev else "")]  # fmt: skip
        for name, a in aborts.items():
            theta = "n/a" if a["theta"] is None else f"{a['theta']:.3f}"
            row = f"| {name} | {theta} | {a['correct_lost']:.1%} | {a['wrong_tokens_saved']:.1%} |"
            if from_dev:
                d = from_dev.get(name)
                cells = f" {d['theta']:.3f} | {d['correct_lost']:.1%} | {d['wrong_tokens_saved']:.1%} |" if d else ""
                row += cells or " n/a | | |"
            md.append(row)
        md.append("")
    if model is not None:
        result["model"] = {"coef": dict(zip(FEATURES, model.coef, strict=True)), "intercept": model.intercept}
    finish(f"fusion_{args.label}", result, md)


if __name__ == "__main__":
    main()
