"""Compare two FineCE adapters on the *same* answers: re-score evaluated records with a reference.

Why this module exists: "the trained adapter is better" only means something when both adapters
judge the very same answers at the very same positions. Re-generating would change the answers
(and cost the generations again), so the records an ``eval`` run wrote are re-scored instead:
every state a record holds (question, each partial prefix, full answer) is rebuilt from the
record's tokens, scored by the reference adapter, and the record's traces are recomputed from
those scores (raw and retrospective BCI); answers, labels and baselines are kept. Re-scored
records are journaled like eval records (resumable, torn tail repaired).

:func:`comparison_section` then puts both adapters side by side per task and position
(question, p(1), full) with bootstrap intervals, plus a *paired* bootstrap interval of the
difference (same resampled answers for both), which is what decides "better" on a small set.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from finece_guard.backends.base import BaseScorer, ScoreRequest
from finece_guard.errors import MetricError
from finece_guard.evaluation.harness import EvalRunReport
from finece_guard.evaluation.records import AnswerRecord, StateScore, StrategyTrace
from finece_guard.evaluation.tables import ALL, COMPARE_POSITIONS, METRICS, cell
from finece_guard.journal import run_journaled
from finece_guard.metrics import UNCHECKED, bootstrap_indices
from finece_guard.runtime.bci import refine
from finece_guard.types import CheckpointKind, Score


def state_requests(record: AnswerRecord) -> list[ScoreRequest]:
    """The scorer requests for every state in ``record``, rebuilt exactly as the harness built them."""
    out: list[ScoreRequest] = []
    for s in record.states:
        kind = CheckpointKind(s.kind)
        if kind is CheckpointKind.QUESTION:
            out.append((record.question, None, kind))
        elif kind is CheckpointKind.FINAL:
            out.append((record.question, record.answer, kind))
        else:
            out.append((record.question, "".join(record.tokens[: s.n_tokens]), kind))
    return out


def with_scores(
    record: AnswerRecord, values: Sequence[tuple[float, float, float]], *, alpha: float, window: int
) -> AnswerRecord:
    """``record`` with its state scores replaced by ``values`` (value, spread, mass) and traces recomputed.

    Look-ahead results belong to the adapter that produced them, so they are dropped.
    """
    if len(values) != len(record.states):
        raise ValueError(f"{len(values)} scores for {len(record.states)} states of {record.key}")
    states = tuple(
        StateScore(s.kind, s.n_tokens, v, sp, m) for s, (v, sp, m) in zip(record.states, values, strict=True)
    )
    by_state = {(s.kind, s.n_tokens): s.value for s in states}
    question = next(s.value for s in states if s.kind == CheckpointKind.QUESTION.value)
    traces: dict[str, StrategyTrace] = {}
    for name, t in record.strategies.items():
        raw = [question]
        for n in t.n_tokens[1:-1]:
            raw.append(by_state[(CheckpointKind.PARTIAL.value, n)])
        raw.append(by_state[(CheckpointKind.FINAL.value, t.n_tokens[-1])])
        bci = tuple(float(v) for v in refine(raw, alpha=alpha, window=window) if v is not None)
        traces[name] = StrategyTrace(n_tokens=t.n_tokens, reasons=t.reasons, raw=tuple(raw), bci=bci)
    return dataclasses.replace(record, states=states, strategies=traces)


async def rescore_records(
    records: Sequence[AnswerRecord],
    out: Path,
    *,
    scorer: BaseScorer,
    alpha: float,
    window: int,
    meta: dict[str, Any],
    concurrency: int = 4,
    on_done: Callable[[AnswerRecord | None], None] | None = None,
) -> EvalRunReport:
    """Re-score ``records`` with ``scorer`` into the journal ``out`` (records already there are skipped).

    ``meta`` (which adapter, which source file) must match the one ``out`` was started with. A
    record whose scoring fails is listed in :attr:`EvalRunReport.failed` and retried next run.
    """

    async def work(record: AnswerRecord) -> AnswerRecord:
        scores = await scorer.ascore_many(state_requests(record))
        values = [(s.value, s.spread, s.mass) for s in scores if isinstance(s, Score)]
        return with_scores(record, values, alpha=alpha, window=window)

    return await run_journaled(
        records, out, key=lambda r: r.key, work=work, parse=AnswerRecord.from_json,
        meta={**meta, "alpha": alpha, "window": window}, concurrency=concurrency, report=EvalRunReport(),
        on_done=on_done,
    )  # fmt: skip


def paired_difference(
    metric: str, conf_a: Sequence[float], conf_b: Sequence[float], labels: Sequence[int], *, n_resamples: int, seed: int
) -> dict[str, Any]:
    """``metric(a) - metric(b)`` on the same answers, with a paired percentile bootstrap 95% interval.

    Both estimators are evaluated on the same resampled answers each time, so the interval is of
    the difference itself (far narrower than comparing two separate intervals).
    """
    a = np.asarray(conf_a, dtype=np.float64)
    b = np.asarray(conf_b, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if not a.size == b.size == y.size:
        raise ValueError(f"paired difference needs equal lengths, got {a.size}, {b.size}, {y.size}")
    fn = UNCHECKED[metric]
    out: dict[str, Any] = {"value": None, "low": None, "high": None, "n": int(y.size), "error": None}
    try:
        out["value"] = fn(a, y) - fn(b, y)
        out["low"], out["high"], _ = bootstrap_indices(
            lambda idx: fn(a[idx], y[idx]) - fn(b[idx], y[idx]), y.size, n_resamples=n_resamples, seed=seed
        )
    except MetricError as exc:
        out["error"] = str(exc) if out["value"] is None else f"no interval: {exc}"
    return out


def _position(record: AnswerRecord, strategy: str, position: str) -> float:
    if position == "question":
        return record.question_score
    if position == "full":
        return record.full_score
    return record.strategies[strategy].at(position)


def comparison_section(
    records: Sequence[AnswerRecord],
    reference: Sequence[AnswerRecord],
    *,
    reference_label: str,
    strategy: str,
    n_resamples: int,
    seed: int,
) -> dict[str, Any]:
    """Per task (and pooled): both adapters' ECE/AUROC/Brier at question, p(1) and full, and the paired differences.

    Only answers present in both sets are compared (matched by key). p(1) is the first checkpoint
    of ``strategy`` (the full answer when that strategy found no partial checkpoint).
    """
    ref = {r.key: r for r in reference}
    pairs = [(r, ref[r.key]) for r in records if r.key in ref]
    if not pairs:
        raise MetricError("no answer is in both the evaluated and the re-scored records; re-run the comparison")
    groups: dict[str, list[tuple[AnswerRecord, AnswerRecord]]] = {}
    for p in pairs:
        groups.setdefault(p[0].task, []).append(p)
    if len(groups) > 1:
        groups[ALL] = pairs
    out: dict[str, Any] = {}
    for group, ps in groups.items():
        labels = [int(a.correct) for a, _ in ps]
        rows: dict[str, Any] = {}
        for key, _label in COMPARE_POSITIONS:
            ca = [_position(a, strategy, key) for a, _ in ps]
            cb = [_position(b, strategy, key) for _, b in ps]
            rows[key] = {
                "this": {m: cell(m, ca, labels, n_resamples=n_resamples, seed=seed) for m in METRICS},
                "reference": {m: cell(m, cb, labels, n_resamples=n_resamples, seed=seed) for m in METRICS},
                "difference": {
                    m: paired_difference(m, ca, cb, labels, n_resamples=n_resamples, seed=seed) for m in METRICS
                },
            }
        out[group] = {"n": len(ps), "positions": rows}
    return {"reference": reference_label, "strategy": strategy, "groups": out, "n_compared": len(pairs)}
