"""The evaluation harness: one greedy answer per question, scored by FineCE and by every baseline.

Why this module exists: FineCE is only worth its cost if its confidences beat cheaper signals on
the *same* answers, at the positions a guard would act on. For each question this module

1. streams one greedy answer (temperature 0) with ``top_logprobs``, so the logprob baselines read
   the very tokens that were judged, and labels it with :func:`~finece_guard.data.is_correct`;
2. replays the answer's tokens through each checkpoint strategy exactly as
   :class:`~finece_guard.runtime.monitor.RunMonitor` feeds them while streaming
   (:func:`replay_checkpoints`), and scores every distinct state once: the question alone, each
   partial prefix any strategy picked, and the full answer;
3. per strategy, builds the trace ``question, partial..., full`` and refines it with retrospective
   BCI (paper eq. 5); optionally runs BCI look-ahead at the first partial checkpoint;
4. computes the baselines: First-Prob, mean/min token probability, mean top-k entropy, DeepConf
   lowest group confidence (from the stream), P(True) and verbalized confidence (one extra
   generator call each) and self-consistency (``sc_n`` extra sampled answers).

Every finished question is one JSON line (:class:`AnswerRecord`) appended, flushed and fsynced to
``records-<partition>.jsonl`` next to a ``.meta.json`` of the settings: a killed run loses only
the questions in flight, a re-run skips finished ones, and a run with other settings is refused.
A question whose generation or FineCE scoring fails, or whose baseline call meets a transient
backend error (connection refused, timeout, 5xx after the client's retries), is not written: it is
retried next run. A baseline that fails otherwise (no True/False token, unparseable verbalized
reply, HTTP 4xx) is recorded as ``None`` with its error.

The full answer is scored as a FINAL state even when it hit ``max_tokens``: it is the answer that
is judged. ``finish_reason`` is kept so the report can count truncated answers.

Where the parts live: settings in :mod:`.settings`, the record schema and reader in :mod:`.records`,
the generator interface in :mod:`.generator`, the baseline calls in :mod:`.baseline_run`, the
resumable runner in :mod:`finece_guard.journal`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finece_guard.backends.base import BaseScorer, ScoreRequest
from finece_guard.backends.openai_generator import StreamStats, question_messages
from finece_guard.data.checkers import extract_final, is_correct
from finece_guard.data.choice_commit import commit_answer
from finece_guard.data.construction import TaskSpec
from finece_guard.data.records import QARecord
from finece_guard.evaluation.baseline_run import answer_baselines
from finece_guard.evaluation.generator import EvalGenerator, SeededSampler
from finece_guard.evaluation.records import (
    BASELINES,
    AnswerRecord,
    StateScore,
    StrategyTrace,
    question_key,
    read_records,
)
from finece_guard.evaluation.settings import EvalConfig
from finece_guard.journal import RunReport, run_journaled
from finece_guard.runtime.bci import look_ahead, refine
from finece_guard.runtime.checkpoints import CheckpointStrategy
from finece_guard.seeding import derived_seed
from finece_guard.types import CheckpointKind, Score, TokenEvent

#: the harness, plus the record names benchmarks import from here (they live in :mod:`.records`)
__all__ = [
    "BASELINES",
    "AnswerRecord",
    "EvalRunReport",
    "StateScore",
    "StrategyTrace",
    "evaluate_question",
    "read_records",
    "replay_checkpoints",
    "run_eval",
]


@dataclass
class EvalRunReport(RunReport):
    """What one pass over a partition (or a re-scoring) did."""

    @property
    def evaluated(self) -> int:
        """Answers evaluated (or re-scored) by this run."""
        return self.finished


def replay_checkpoints(tokens: Sequence[TokenEvent], strategy: CheckpointStrategy) -> list[tuple[int, str]]:
    """``(n_tokens, reason)`` of each partial checkpoint ``strategy`` closes while ``tokens`` stream.

    Tokens are fed one by one exactly as :meth:`RunMonitor.feed` does (``since_last`` counts tokens
    since the previous checkpoint, the newest included). A checkpoint closed by the very last token
    is the full answer, not a partial one, so it is left out (as :meth:`RunMonitor.finish` does).
    """
    out: list[tuple[int, str]] = []
    last = 0
    seen: list[TokenEvent] = []
    for token in tokens:
        seen.append(token)
        reason = strategy.reason(seen, len(seen) - last)
        if reason:
            out.append((len(seen), reason))
            last = len(seen)
    if out and out[-1][0] == len(tokens):
        out.pop()
    return out


async def evaluate_question(
    record: QARecord,
    spec: TaskSpec,
    *,
    generator: EvalGenerator,
    scorer: BaseScorer,
    config: EvalConfig,
) -> AnswerRecord:
    """Generate, label and score one question (see the module docstring); raises on a failed
    generation or FineCE score (the question is then retried by the next run)."""
    t0 = time.perf_counter()
    key = question_key(spec, record)
    prompt = record.prompt(with_context=spec.with_context)
    stats = StreamStats()
    tokens: list[TokenEvent] = []
    async for event in generator.astream(
        question_messages(prompt), max_tokens=config.max_tokens, temperature=0.0, stats=stats
    ):
        tokens.append(event)
    texts = [t.text for t in tokens]
    answer = "".join(texts)
    if config.commit_choices:  # the judged answer; ``tokens`` stay the streamed ones the logprob baselines read
        answer = await commit_answer(record, prompt, answer, generator)
    correct = is_correct(record, answer)
    final = extract_final(record, answer)

    strategies = config.parsed_strategies()
    checkpoints = {name: replay_checkpoints(tokens, strategy) for name, strategy in strategies.items()}

    # every distinct state once: question, each partial prefix any strategy picked, full answer
    states: dict[tuple[CheckpointKind, int], ScoreRequest] = {
        (CheckpointKind.QUESTION, 0): (prompt, None, CheckpointKind.QUESTION)
    }
    for n in sorted({n for cps in checkpoints.values() for n, _ in cps}):
        states[(CheckpointKind.PARTIAL, n)] = (prompt, "".join(texts[:n]), CheckpointKind.PARTIAL)
    states[(CheckpointKind.FINAL, len(tokens))] = (prompt, answer, CheckpointKind.FINAL)
    by_text: dict[tuple[CheckpointKind, str | None], int] = {}
    unique: list[ScoreRequest] = []
    slot: dict[tuple[CheckpointKind, int], int] = {}
    for state_key, request in states.items():
        text_key = (request[2], request[1])
        if text_key not in by_text:
            by_text[text_key] = len(unique)
            unique.append(request)
        slot[state_key] = by_text[text_key]

    scoring = scorer.ascore_many(unique, return_exceptions=True)
    baselines_job = answer_baselines(record, prompt, answer, final, tokens, generator, config, key)
    scored, baselines = await asyncio.gather(scoring, baselines_job)
    for result in scored:
        if isinstance(result, BaseException):
            raise result
    scores: list[Score] = [s for s in scored if isinstance(s, Score)]

    def value(kind: CheckpointKind, n: int) -> float:
        return scores[slot[(kind, n)]].value

    traces: dict[str, StrategyTrace] = {}
    for name, cps in checkpoints.items():
        n_tokens = (0, *(n for n, _ in cps), len(tokens))
        reasons = ("question only", *(r for _, r in cps), "full answer")
        raw = (value(CheckpointKind.QUESTION, 0), *(value(CheckpointKind.PARTIAL, n) for n, _ in cps),
               value(CheckpointKind.FINAL, len(tokens)))  # fmt: skip
        bci = tuple(float(v) for v in refine(list(raw), alpha=config.alpha, window=config.window) if v is not None)
        traces[name] = StrategyTrace(n_tokens=n_tokens, reasons=reasons, raw=raw, bci=bci)

    if config.lookahead:
        traces = await _with_lookahead(traces, prompt, texts, generator, scorer, config, key)

    return AnswerRecord(
        key=key,
        task=str(spec),
        record_id=record.id,
        partition=config.partition,
        question=prompt,
        answer=answer,
        correct=correct,
        final=final,
        n_tokens=len(tokens),
        finish_reason=stats.finish_reason,
        tokens=tuple(texts),
        token_logprobs=tuple(t.logprob for t in tokens),
        states=tuple(_state_score(kind, n, scores[slot[(kind, n)]]) for kind, n in states),
        strategies=traces,
        baselines=baselines.values,
        baseline_errors=baselines.errors,
        sc_finals=baselines.sc_finals,
        verbalized_text=baselines.verbalized_text,
        seconds=time.perf_counter() - t0,
    )


def _state_score(kind: CheckpointKind, n_tokens: int, score: Score) -> StateScore:
    return StateScore(kind.value, n_tokens, score.value, score.spread, score.mass)


async def _with_lookahead(
    traces: dict[str, StrategyTrace],
    prompt: str,
    texts: Sequence[str],
    generator: EvalGenerator,
    scorer: BaseScorer,
    config: EvalConfig,
    key: str,
) -> dict[str, StrategyTrace]:
    """BCI look-ahead at each strategy's first partial checkpoint (one run per distinct prefix)."""
    firsts = {name: t.n_tokens[1] for name, t in traces.items() if t.n_partial > 0}
    raw_at = {t.n_tokens[1]: t.raw[1] for t in traces.values() if t.n_partial > 0}
    sampler = SeededSampler(generator, derived_seed(config.seed, key, "look-ahead"))
    prefixes = sorted(raw_at)
    done = await asyncio.gather(*(
        look_ahead(
            prompt, "".join(texts[:n]), raw_at[n], sampler=sampler, scorer=scorer, width=config.lookahead_w,
            depth=config.lookahead_d, alpha=config.alpha, max_tokens_per_step=config.lookahead_tokens,
        )
        for n in prefixes
    ))  # fmt: skip
    results = dict(zip(prefixes, done, strict=True))
    out: dict[str, StrategyTrace] = {}
    for name, trace in traces.items():
        if name in firsts:
            r = results[firsts[name]]
            trace = StrategyTrace(trace.n_tokens, trace.reasons, trace.raw, trace.bci, r.value, r.paths)
        out[name] = trace
    return out


async def run_eval(
    questions: Sequence[tuple[TaskSpec, QARecord]],
    out: Path,
    *,
    generator: EvalGenerator,
    scorer: BaseScorer,
    config: EvalConfig,
    meta: dict[str, Any] | None = None,
    concurrency: int = 4,
    on_done: Callable[[AnswerRecord | None], None] | None = None,
) -> EvalRunReport:
    """Evaluate ``questions`` (at most ``concurrency`` in flight), appending to ``out``.

    Questions already in ``out`` are skipped; ``meta`` (plus ``config``) must match the settings
    the file was started with. A question whose generation or FineCE scoring fails is listed in
    :attr:`EvalRunReport.failed` and retried by the next run.
    """

    async def work(question: tuple[TaskSpec, QARecord]) -> AnswerRecord:
        spec, record = question
        return await evaluate_question(record, spec, generator=generator, scorer=scorer, config=config)

    return await run_journaled(
        questions, out, key=lambda q: question_key(*q), work=work, parse=AnswerRecord.from_json,
        meta={**config.to_meta(), **(meta or {})}, concurrency=concurrency, report=EvalRunReport(), on_done=on_done,
    )  # fmt: skip
