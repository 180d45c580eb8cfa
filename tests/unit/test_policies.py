"""Policies are pure: hand-made views in, decisions out; and the composition's precedence."""

from __future__ import annotations

import asyncio

import pytest

from finece_guard.errors import ConfigError
from finece_guard.runtime.policies import (
    AbortBelow,
    AcceptAbove,
    Action,
    Budget,
    PolicyView,
    RetrieveBelow,
    RetryBelow,
    decide_in_stream,
    decide_regeneration,
    decide_verdict,
)
from finece_guard.types import Checkpoint, CheckpointKind, Score, ScoredCheckpoint


def _sc(pos: int, kind: CheckpointKind, value: float | None, n_tokens: int = 10) -> ScoredCheckpoint:
    cp = Checkpoint(pos, kind, n_tokens, "x" * n_tokens, "test")
    return ScoredCheckpoint(cp, Score(value, 0.0, 1.0) if value is not None else None, None if value else "err")


def _view(values: list[float | None], *, phase: str = "checkpoint", n_tokens: int = 40, **kw: object) -> PolicyView:
    kinds = [CheckpointKind.QUESTION] + [CheckpointKind.PARTIAL] * (len(values) - 1)
    if phase == "attempt_end" and len(values) > 1:
        kinds[-1] = CheckpointKind.FINAL
    cps = tuple(_sc(i, k, v, n_tokens=i * 10) for i, (k, v) in enumerate(zip(kinds, values, strict=True)))
    return PolicyView(
        question="q", text="answer", n_tokens=n_tokens, checkpoints=cps, raw=tuple(values),
        refined=tuple(values) if phase == "attempt_end" else (), phase=phase, **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def test_abort_below_threshold_on_latest_partial() -> None:
    p = AbortBelow(0.4, min_tokens=16)
    assert p.decide(_view([0.9, 0.8, 0.3])).action is Action.ABORT
    assert p.decide(_view([0.9, 0.3, 0.8])).action is Action.CONTINUE  # recovered: only the latest counts
    assert p.decide(_view([0.9, 0.3], n_tokens=10)).action is Action.CONTINUE  # not enough text yet
    assert p.decide(_view([0.9, 0.3], phase="attempt_end")).action is Action.CONTINUE  # stream-only policy


def test_abort_ignores_question_score_unless_asked() -> None:
    assert AbortBelow(0.4).decide(_view([0.1])).action is Action.CONTINUE
    d = AbortBelow(0.4, include_question=True).decide(_view([0.1]))
    assert d.action is Action.ABORT and d.score == 0.1 and "0.100" in d.reason


def test_abort_skips_unscored_checkpoints() -> None:
    assert AbortBelow(0.4).decide(_view([0.9, 0.2, None])).action is Action.ABORT


def test_retry_until_max_attempts_with_changing_sampling() -> None:
    p = RetryBelow(0.5, max_attempts=3, temperatures=(0.7, 1.0), seeds=(11, 12))
    d1 = p.decide(_view([0.9, 0.2], phase="attempt_end", attempts_used=1))
    d2 = p.decide(_view([0.9, 0.2], phase="attempt_end", attempts_used=2))
    assert (d1.action, d1.params) == (Action.RETRY, {"temperature": 0.7, "seed": 11})
    assert (d2.action, d2.params) == (Action.RETRY, {"temperature": 1.0, "seed": 12})
    assert p.decide(_view([0.9, 0.2], phase="attempt_end", attempts_used=3)).action is Action.CONTINUE
    assert p.decide(_view([0.1, 0.8], phase="attempt_end")).action is Action.CONTINUE
    assert p.decide(_view([0.9, 0.8], phase="attempt_end", aborted=True)).action is Action.RETRY


def test_retrieve_query_and_budget() -> None:
    p = RetrieveBelow(0.5, max_retrievals=1, k=2, include_partial_answer=True)
    d = p.decide(_view([0.9, 0.3], phase="attempt_end"))
    assert d.action is Action.RETRIEVE and d.params == {"query": "q\nanswer", "k": 2, "stage": "attempt_end"}
    assert p.decide(_view([0.9, 0.3], phase="attempt_end", retrievals_used=1)).action is Action.CONTINUE


def test_accept_above_delta_and_explicit_rejections() -> None:
    p = AcceptAbove(0.6, fallback="no")
    assert p.decide(_view([0.2, 0.6], phase="attempt_end")).action is Action.ACCEPT
    r = p.decide(_view([0.9, 0.59], phase="attempt_end"))
    assert r.action is Action.REJECT and r.score == 0.59 and "0.590 < 0.6" in r.reason
    assert p.decide(_view([0.9, None], phase="attempt_end")).action is Action.REJECT
    assert p.decide(_view([0.9, 0.9], phase="attempt_end", aborted=True)).action is Action.REJECT


@pytest.mark.parametrize(
    "make",
    [lambda: AbortBelow(1.5), lambda: AcceptAbove(-0.1), lambda: RetryBelow(0.5, max_attempts=0),
     lambda: RetryBelow(0.5, temperatures=()), lambda: RetrieveBelow(0.5, k=0), lambda: Budget(max_attempts=0)],
)  # fmt: skip
def test_bad_arguments_raise_config_error(make: object) -> None:
    with pytest.raises(ConfigError):
        make()  # type: ignore[operator]


def test_precedence_in_stream_only_abort_and_early_retrieval_act() -> None:
    policies = [AcceptAbove(0.9), RetryBelow(0.9), AbortBelow(0.5)]
    assert decide_in_stream(policies, _view([0.9, 0.3]))[0].action is Action.ABORT
    assert decide_in_stream(policies[:2], _view([0.9, 0.3]))[0].action is Action.CONTINUE
    # a late retrieval (early=False) never acts in-stream; an early one does, within the budget
    assert decide_in_stream([RetrieveBelow(0.5)], _view([0.9, 0.3]), can_retrieve=True)[0].action is Action.CONTINUE
    early = [RetrieveBelow(0.5, early=True, min_tokens=0), AbortBelow(0.5)]
    d, refused = decide_in_stream(early, _view([0.9, 0.3]), Budget(), can_retrieve=True)
    assert d.action is Action.RETRIEVE and d.params["stage"] == "in_stream" and refused == []
    d, refused = decide_in_stream(early, _view([0.9, 0.3]), Budget(max_retrievals=0), can_retrieve=True)
    assert d.action is Action.ABORT and "max_retrievals=0" in refused[0]


def test_precedence_regeneration_first_in_list_order_within_budget() -> None:
    view = _view([0.9, 0.3], phase="attempt_end")
    retrieve_first = [RetrieveBelow(0.5), RetryBelow(0.5), AcceptAbove(0.5)]
    d, refused = decide_regeneration(retrieve_first, view, Budget(), tokens_used=10, can_retrieve=True)
    assert d.action is Action.RETRIEVE and refused == []
    d, refused = decide_regeneration(retrieve_first, view, Budget(), tokens_used=10, can_retrieve=False)
    assert d.action is Action.RETRY and "no retriever" in refused[0]
    d, refused = decide_regeneration(retrieve_first, view, Budget(max_tokens=10), tokens_used=10, can_retrieve=True)
    assert d.action is Action.CONTINUE and len(refused) == 2 and all("max_tokens" in r for r in refused)
    d, _ = decide_regeneration(retrieve_first, _view([0.9, 0.3], phase="attempt_end", attempts_used=3), Budget(),
                               tokens_used=0, can_retrieve=True)  # fmt: skip
    assert d.action is Action.CONTINUE


def test_verdict_reject_wins_and_default_accepts() -> None:
    view = _view([0.9, 0.55], phase="attempt_end")
    assert decide_verdict([AcceptAbove(0.5), AcceptAbove(0.6)], view).action is Action.REJECT
    assert decide_verdict([AcceptAbove(0.5)], view).action is Action.ACCEPT
    default = decide_verdict([AbortBelow(0.5)], view)
    assert default.action is Action.ACCEPT and default.policy == "default"


@pytest.mark.asyncio
async def test_no_policy_combination_loops_forever() -> None:
    """The guard's own attempt loop with always-unhappy policies: the budget ends it."""
    from langchain_core.documents import Document

    from finece_guard.runtime.guard import FineCEGuard
    from finece_guard.testing import EchoChatModel, KeywordScorer
    from tests.unit.test_guard import ListRetriever

    guard = FineCEGuard(
        EchoChatModel(delay_s=0.0, reply=lambda p, k: "Still unsure."), scorer=KeywordScorer(lambda q, a, kind: 0.1),
        retriever=ListRetriever(docs=[Document("A passage.", id="doc-1")]),
        policies=[RetrieveBelow(1.0, max_retrievals=99), RetryBelow(1.0, max_attempts=99)],
        budget=Budget(max_attempts=4, max_retrievals=2),
    )  # fmt: skip
    result = await asyncio.wait_for(guard.ainvoke("Q?"), timeout=60)
    actions = [d.action for d in result.trace.decisions]
    assert len(result.attempts) == 4
    assert (actions.count(Action.RETRIEVE), actions.count(Action.RETRY)) == (2, 1)
    assert result.trace.verdict is not None


def test_kept_attempt_latest_context_then_best_confidence() -> None:
    from finece_guard.runtime.policies.compose import kept_attempt

    conf = {"a": 0.9, "b": 0.4, "c": 0.7, "d": None, "e": None}
    ctx = {"a": (), "b": ("p",), "c": ("p",), "d": ("q",), "e": ("q",)}

    def keep(names: str) -> str:
        return kept_attempt(list(names), confidence=conf.__getitem__, context=ctx.__getitem__)

    assert keep("a") == "a"
    assert keep("abc") == "c"  # retrieval supersedes the more confident ungrounded "a"
    assert keep("abcde") == "e"  # latest context has no score: its latest attempt
    assert keep("bc") == "c" and keep("cb") == "c"
    with pytest.raises(ValueError, match="no attempt"):
        keep("")


def test_scoring_failed_verdict_follows_the_mode() -> None:
    from finece_guard.runtime.policies.compose import scoring_failed_verdict

    assert scoring_failed_verdict("open", "timeout").action is Action.ACCEPT
    closed = scoring_failed_verdict("closed", "timeout")
    assert closed.action is Action.REJECT and closed.reason == "scoring failed, fail closed: timeout"
