"""Every baseline confidence of one evaluated answer (what the harness records beside FineCE).

The logprob baselines (First-Prob, mean/min token probability, mean top-k entropy, DeepConf
lowest group confidence) are read from the answer's own streamed tokens; P(True) and verbalized
confidence cost one extra generator call each, self-consistency ``sc_n`` sampled answers. The
formulas are in :mod:`finece_guard.evaluation.baselines`; this module runs them.

A server that is down or overloaded (a transient backend error) fails the question, which is
retried next run, instead of leaving a permanent hole in a baseline; a readout problem or an
HTTP 4xx is recorded as ``None`` with its error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from finece_guard.backends.http import is_transient
from finece_guard.data.checkers import extract_final
from finece_guard.data.choice_commit import CommittingSampler
from finece_guard.data.construction import MonteCarloSampler
from finece_guard.data.records import QARecord
from finece_guard.errors import ConfigError, FineCEError, MetricError
from finece_guard.evaluation import baselines as bl
from finece_guard.evaluation.generator import EvalGenerator
from finece_guard.evaluation.records import BASELINES
from finece_guard.evaluation.settings import EvalConfig
from finece_guard.seeding import derived_seed
from finece_guard.types import TokenEvent


def _logprob_baselines(tokens: Sequence[TokenEvent], config: EvalConfig) -> dict[str, Callable[[], float]]:
    return {
        "first_prob": lambda: bl.first_prob(tokens),
        "mean_token_prob": lambda: bl.mean_token_prob(tokens),
        "min_token_prob": lambda: bl.min_token_prob(tokens),
        "mean_entropy": lambda: bl.mean_entropy_conf(tokens),
        "deepconf_lgc": lambda: bl.lowest_group_conf(tokens, window=config.deepconf_window),
    }


@dataclass(frozen=True)
class AnswerBaselines:
    """Each baseline's confidence (None where it failed, its error in ``errors``) and what it read."""

    values: dict[str, float | None]
    errors: dict[str, str]
    sc_finals: tuple[str | None, ...]
    verbalized_text: str | None


async def answer_baselines(
    record: QARecord,
    prompt: str,
    answer: str,
    final: str | None,
    tokens: Sequence[TokenEvent],
    generator: EvalGenerator,
    config: EvalConfig,
    key: str,
) -> AnswerBaselines:
    """Every baseline of ``answer`` (its streamed ``tokens``); raises on a transient backend error."""
    values: dict[str, float | None] = {}
    errors: dict[str, str] = {}
    for name, fn in _logprob_baselines(tokens, config).items():
        try:
            values[name] = fn()
        except (MetricError, ConfigError) as exc:
            values[name], errors[name] = None, f"{type(exc).__name__}: {exc}"

    async def ptrue() -> float:
        top = await generator.next_token_logprobs(bl.ptrue_messages(prompt, answer), top_logprobs=config.top_logprobs)
        return bl.read_ptrue(top)

    async def verbalized() -> str:
        messages = bl.verbalized_messages(prompt, answer)
        if config.verbalized_prefix:
            messages.append({"role": "assistant", "content": config.verbalized_prefix})
        reply = await generator.complete(messages, max_tokens=config.verbalized_max_tokens)
        return config.verbalized_prefix + reply

    async def samples() -> list[str]:
        sampler: MonteCarloSampler = generator
        if config.commit_choices:
            sampler = CommittingSampler(generator, generator, record)
        return await sampler.sample_continuations(
            prompt, "", n=config.sc_n, max_tokens=config.max_tokens, temperature=config.sc_temperature,
            top_p=config.sc_top_p, seed=derived_seed(config.seed, key, "self-consistency"),
        )  # fmt: skip

    jobs: list[Awaitable[Any]] = [ptrue(), verbalized()]
    if config.sc_n > 0:
        jobs.append(samples())
    results = await asyncio.gather(*jobs, return_exceptions=True)
    for r in results:
        # a server that is down or overloaded fails the question (retried next run) instead of
        # leaving a permanent hole in a baseline; a readout or HTTP 4xx problem is recorded
        if isinstance(r, BaseException) and (not isinstance(r, FineCEError) or is_transient(r)):
            raise r
    p_true, verb, *rest = results
    if isinstance(p_true, BaseException):
        values["p_true"], errors["p_true"] = None, f"{type(p_true).__name__}: {p_true}"
    else:
        values["p_true"] = float(p_true)
    verbalized_text: str | None = None
    if isinstance(verb, BaseException):
        values["verbalized"], errors["verbalized"] = None, f"{type(verb).__name__}: {verb}"
    else:
        verbalized_text = str(verb)
        values["verbalized"] = bl.parse_verbalized(verbalized_text)
        if values["verbalized"] is None:
            errors["verbalized"] = f"no confidence could be read from the reply {verbalized_text[:80]!r}"
    sc_finals: tuple[str | None, ...] = ()
    if config.sc_n == 0:
        values["self_consistency"], errors["self_consistency"] = None, "disabled (sc_n=0)"
    elif isinstance(rest[0], BaseException):
        values["self_consistency"], errors["self_consistency"] = None, f"{type(rest[0]).__name__}: {rest[0]}"
    else:
        sc_finals = tuple(extract_final(record, s) for s in rest[0])
        values["self_consistency"] = bl.self_consistency(sc_finals, final)
    return AnswerBaselines({name: values.get(name) for name in BASELINES}, errors, sc_finals, verbalized_text)
