"""Bad user input fails at the public boundary with a ConfigError that names the argument and an example.

No bare ValueError/TypeError: thresholds given as strings or NaN, timeouts that are NaN, inf,
negative or not numbers, blank questions, wrong checkpoint kinds.
"""

from __future__ import annotations

import math
from typing import Any

import httpx
import pytest

from finece_guard import checks
from finece_guard.backends.http import OpenAIHTTP
from finece_guard.backends.openai_generator import OpenAICompatGenerator
from finece_guard.backends.openai_scorer import OpenAICompatScorer
from finece_guard.config import load_settings
from finece_guard.errors import ConfigError
from finece_guard.prompts import DEFAULT_SCALE, build_scorer_messages
from finece_guard.runtime.policies import AbortBelow, AcceptAbove, Budget, RetrieveBelow, RetryBelow
from finece_guard.types import CheckpointKind

NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    ("make", "name"),
    [
        (lambda: AcceptAbove("0.3"), "delta"),  # type: ignore[arg-type]
        (lambda: AcceptAbove(NAN), "delta"),
        (lambda: AcceptAbove(1.2), "delta"),
        (lambda: AbortBelow(NAN), "threshold"),
        (lambda: AbortBelow(-0.1), "threshold"),
        (lambda: AbortBelow(0.2, min_tokens=1.5), "min_tokens"),  # type: ignore[arg-type]
        (lambda: RetrieveBelow(None), "threshold"),  # type: ignore[arg-type]
        (lambda: RetrieveBelow(0.3, k="3"), "k"),  # type: ignore[arg-type]
        (lambda: RetryBelow(INF), "threshold"),
        (lambda: RetryBelow(0.3, temperatures=("hot",)), "temperatures"),  # type: ignore[arg-type]
        (lambda: RetryBelow(0.3, seeds=("1",)), "seeds"),  # type: ignore[arg-type]
        (lambda: Budget(max_attempts=True), "max_attempts"),
    ],
)
def test_policies_refuse_bad_arguments_with_a_config_error(make: Any, name: str) -> None:
    with pytest.raises(ConfigError) as info:
        make()
    assert name in str(info.value) and "e.g." in str(info.value)


def test_valid_policy_arguments_still_work() -> None:
    assert AcceptAbove(0).delta == 0 and AbortBelow(1.0).threshold == 1.0
    assert RetryBelow(0.3, temperatures=(0.7, 1), seeds=(1, 2)).sampling(2) == {"temperature": 1, "seed": 2}


@pytest.mark.parametrize("bad", [NAN, INF, -1.0, 0, "5", None, True])
@pytest.mark.parametrize("arg", ["timeout_s", "connect_timeout_s"])
def test_timeouts_must_be_finite_positive_numbers(arg: str, bad: object) -> None:
    for make in (
        lambda: OpenAIHTTP("http://h/v1", **{arg: bad}),
        lambda: OpenAICompatScorer("http://h/v1", **{arg: bad}),
        lambda: OpenAICompatGenerator("http://h/v1", model="g", **{arg: bad}),
    ):
        with pytest.raises(ConfigError, match=rf"{arg}=.*finite number of seconds > 0.*e.g. {arg}="):
            make()


@pytest.mark.parametrize("bad", [NAN, INF, -3.0, "10"])
def test_deadline_must_be_finite_positive_or_none(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"deadline_s=.*or None for no limit"):
        OpenAICompatScorer("http://h/v1", deadline_s=bad)  # type: ignore[arg-type]
    assert OpenAICompatScorer("http://h/v1", deadline_s=None).http.deadline_s is None
    assert OpenAICompatScorer("http://h/v1", deadline_s=2).http.deadline_s == 2.0


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"retries": -1}, "retries"),
        ({"retries": 1.5}, "retries"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"top_logprobs": 0}, "top_logprobs"),
        ({"top_logprobs": 21}, "top_logprobs"),
        ({"min_mass": NAN}, "min_mass"),
        ({"model": ""}, "model"),
        ({"verify": "no"}, "verify"),
        ({"verify_timeout_s": INF}, "verify_timeout_s"),
        ({"priority": 1.5}, "priority"),
        ({"api_key": None}, "api_key"),
    ],
)
def test_scorer_constructor_arguments(kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        OpenAICompatScorer("http://h/v1", **kwargs)


@pytest.mark.parametrize("field", ["request_timeout_s", "connect_timeout_s", "startup_timeout_s", "verify_timeout_s"])
@pytest.mark.parametrize("bad", [NAN, INF, -1.0, "soon"])
def test_settings_timeouts(field: str, bad: object) -> None:
    with pytest.raises(ConfigError, match=rf"{field} \(env FINECE_{field.upper()}\)"):
        load_settings(**{field: bad})


def test_settings_dtype_and_scheduling_policy() -> None:
    with pytest.raises(ConfigError, match=r"dtype"):
        load_settings(dtype="bf16")
    with pytest.raises(ConfigError, match=r"scheduling_policy"):
        load_settings(scheduling_policy="lifo")
    s = load_settings(dtype="float32", scheduling_policy="fcfs")
    assert (s.dtype, s.scheduling_policy) == ("float32", "fcfs")


@pytest.mark.parametrize("question", ["", "   ", "\n", None, 42])
def test_blank_question_is_a_config_error_with_an_example(question: Any) -> None:
    with pytest.raises(ConfigError, match=r"question=.*e.g. question='What is the capital of France\?'"):
        build_scorer_messages(question, None, CheckpointKind.QUESTION)


def _recording_scorer(calls: list[str]) -> OpenAICompatScorer:
    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return httpx.Response(500)

    scorer = OpenAICompatScorer("http://h/v1")
    scorer.http = OpenAIHTTP("http://h/v1", transport=httpx.MockTransport(handler))
    return scorer


@pytest.mark.asyncio
async def test_scorer_refuses_a_blank_question_before_any_network_call() -> None:
    calls: list[str] = []
    with pytest.raises(ConfigError, match=r"question="):
        await _recording_scorer(calls).ascore("", None, CheckpointKind.QUESTION)
    assert calls == []


def test_sync_score_refuses_a_blank_question_too() -> None:
    calls: list[str] = []
    with pytest.raises(ConfigError, match=r"question="):
        _recording_scorer(calls).score("  ", "answer", CheckpointKind.FINAL)
    assert calls == []


def test_kind_and_answer_errors() -> None:
    with pytest.raises(ConfigError, match=r"kind='done' is not a checkpoint kind.*'question', 'partial', 'final'"):
        build_scorer_messages("q?", "a", "done")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"answer=None: a partial checkpoint needs the answer text"):
        build_scorer_messages("q?", None, CheckpointKind.PARTIAL)
    with pytest.raises(ConfigError, match=r"confidence"):
        DEFAULT_SCALE.target_for(NAN)


def test_checks_helpers_normalise_and_refuse() -> None:
    assert checks.seconds("t", 3) == 3.0 and isinstance(checks.seconds("t", 3), float)
    assert checks.probability("p", 1) == 1.0
    assert checks.integer("n", 4, low=1) == 4
    assert checks.optional_seconds("d", None) is None
    for bad in (True, NAN, "0.5", None, 1.0001, -math.ulp(0.0)):
        with pytest.raises(ConfigError):
            checks.probability("p", bad)
    with pytest.raises(ConfigError, match=r"n=5: must be an integer in \[1, 4\], e.g. n=1"):
        checks.integer("n", 5, low=1, high=4)
