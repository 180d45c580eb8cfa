"""Unit tests for finece_guard.evaluation.baselines with hand-computed values."""

from __future__ import annotations

import math

import pytest

from finece_guard.errors import ConfigError, MetricError, ScoreReadoutError
from finece_guard.evaluation.baselines import (
    PTRUE_ASSISTANT_PREFIX,
    first_prob,
    lowest_group_conf,
    lowest_group_confidence_raw,
    majority_agreement,
    mean_entropy_conf,
    mean_token_prob,
    min_token_prob,
    parse_verbalized,
    ptrue_messages,
    read_ptrue,
    self_consistency,
    token_confidences,
    verbalized_messages,
)
from finece_guard.types import TokenEvent

LN = math.log


def toks(logprobs: list[float | None]) -> list[TokenEvent]:
    return [TokenEvent(index=i, text=f"t{i}", logprob=lp) for i, lp in enumerate(logprobs)]


def with_top(*tops: list[tuple[str, float]]) -> list[TokenEvent]:
    return [
        TokenEvent(index=i, text=top[0][0] if top else "x", logprob=top[0][1] if top else -1.0, top_logprobs=tuple(top))
        for i, top in enumerate(tops)
    ]


THREE = toks([-0.1, -2.0, -0.5])

# --------------------------------------------------------------------------- token-probability baselines


def test_first_prob_is_exp_of_first_logprob() -> None:
    # exp(-0.1) = 0.904837
    assert first_prob(THREE) == pytest.approx(0.904837, abs=1e-6)


def test_first_prob_needs_only_the_first_logprob() -> None:
    assert first_prob(toks([-0.1, None])) == pytest.approx(0.904837, abs=1e-6)
    with pytest.raises(MetricError, match="logprobs=True"):
        first_prob(toks([None, -0.1]))


def test_mean_token_prob_is_geometric_mean() -> None:
    # mean logprob = (-0.1 - 2.0 - 0.5) / 3 = -0.866667 -> exp = 0.420350
    assert mean_token_prob(THREE) == pytest.approx(0.420350, abs=1e-6)


def test_min_token_prob() -> None:
    # min logprob -2.0 -> exp(-2) = 0.135335
    assert min_token_prob(THREE) == pytest.approx(0.135335, abs=1e-6)


def test_logprob_of_zero_gives_one() -> None:
    assert mean_token_prob(toks([0.0, 0.0])) == 1.0
    assert min_token_prob(toks([0.0])) == 1.0


@pytest.mark.parametrize("fn", [first_prob, mean_token_prob, min_token_prob])
def test_empty_answer_raises(fn: object) -> None:
    with pytest.raises(MetricError, match="no tokens"):
        fn([])  # type: ignore[operator]


@pytest.mark.parametrize("fn", [mean_token_prob, min_token_prob])
def test_missing_logprobs_raise(fn: object) -> None:
    with pytest.raises(MetricError, match="no logprobs on tokens: request logprobs=True"):
        fn(toks([None, None]))  # type: ignore[operator]
    with pytest.raises(MetricError, match=r"1 of 3 tokens have no logprob \(first at index 1\)"):
        fn(toks([-0.1, None, -0.3]))  # type: ignore[operator]


# --------------------------------------------------------------------------- entropy


def test_mean_entropy_conf_hand_computed() -> None:
    # token 0: two alternatives at p=0.5 each -> H = ln 2 = 0.693147
    # token 1: one alternative (p=1)            -> H = 0
    # mean H = 0.346574 -> exp(-0.346574) = 1/sqrt(2) = 0.707107
    tokens = with_top([("a", LN(0.5)), ("b", LN(0.5))], [("c", 0.0)])
    assert mean_entropy_conf(tokens) == pytest.approx(0.707107, abs=1e-6)


def test_mean_entropy_conf_renormalises_the_top_k() -> None:
    # p = 0.4, 0.4 (sum 0.8) renormalise to 0.5, 0.5 -> same ln 2 as above
    tokens = with_top([("a", LN(0.4)), ("b", LN(0.4))], [("c", 0.0)])
    assert mean_entropy_conf(tokens) == pytest.approx(0.707107, abs=1e-6)


def test_mean_entropy_conf_k_truncates_to_most_likely() -> None:
    # unsorted alternatives; k=1 keeps only the most likely -> every H = 0 -> exp(0) = 1
    tokens = with_top([("b", LN(0.3)), ("a", LN(0.6))])
    assert mean_entropy_conf(tokens, k=1) == 1.0
    # k=None: p = 0.6, 0.3 -> renormalised 2/3, 1/3 -> H = 0.636514 -> exp(-H) = 0.529134
    assert mean_entropy_conf(tokens) == pytest.approx(0.529134, abs=1e-6)


def test_mean_entropy_conf_errors() -> None:
    with pytest.raises(MetricError, match="no top_logprobs on tokens"):
        mean_entropy_conf(toks([-0.1, -0.2]))
    with pytest.raises(MetricError, match="no tokens"):
        mean_entropy_conf([])
    with pytest.raises(ConfigError):
        mean_entropy_conf(with_top([("a", 0.0)]), k=0)


# --------------------------------------------------------------------------- DeepConf

# C_i = -(lp1 + lp2) / 2 over the two alternatives at each position:
# t0: -(-0.1 - 3.9)/2 = 2.0;  t1: -(-0.7 - 1.3)/2 = 1.0;  t2: -(-0.05 - 5.95)/2 = 3.0;  t3: -(-0.01 - 7.99)/2 = 4.0
DEEPCONF = with_top(
    [("a", -0.1), ("b", -3.9)],
    [("b", -1.3), ("a", -0.7)],  # unsorted on purpose
    [("a", -0.05), ("b", -5.95), ("c", -20.0)],  # third alternative dropped when k=2
    [("a", -0.01), ("b", -7.99)],
)


def test_token_confidences_hand_computed() -> None:
    assert token_confidences(DEEPCONF, k=2).tolist() == pytest.approx([2.0, 1.0, 3.0, 4.0])
    # without k the third alternative of t2 counts: -(-0.05 - 5.95 - 20)/3 = 8.666667
    assert token_confidences(DEEPCONF)[2] == pytest.approx(8.666667, abs=1e-6)


def test_lowest_group_window_arithmetic() -> None:
    # window 2: groups (2,1) (1,3) (3,4) -> means 1.5, 2.0, 3.5 -> lowest 1.5 -> 1 - exp(-1.5) = 0.776870
    assert lowest_group_confidence_raw(DEEPCONF, window=2, k=2) == pytest.approx(1.5)
    assert lowest_group_conf(DEEPCONF, window=2, k=2) == pytest.approx(0.776870, abs=1e-6)
    # window 3: groups (2,1,3) (1,3,4) -> means 2.0, 2.667 -> lowest 2.0 -> 1 - exp(-2) = 0.864665
    assert lowest_group_conf(DEEPCONF, window=3, k=2) == pytest.approx(0.864665, abs=1e-6)
    # window 1: lowest single token C = 1.0 -> 1 - exp(-1) = 0.632121
    assert lowest_group_conf(DEEPCONF, window=1, k=2) == pytest.approx(0.632121, abs=1e-6)
    # window longer than the answer (and the 2048 default): one group, mean 2.5 -> 1 - exp(-2.5) = 0.917915
    assert lowest_group_conf(DEEPCONF, window=10, k=2) == pytest.approx(0.917915, abs=1e-6)
    assert lowest_group_conf(DEEPCONF, k=2) == pytest.approx(0.917915, abs=1e-6)


def test_lowest_group_conf_is_monotone_in_raw() -> None:
    lo = lowest_group_conf(DEEPCONF, window=1, k=2)
    hi = lowest_group_conf(DEEPCONF, window=3, k=2)
    assert 0.0 <= lo < hi < 1.0


def test_deepconf_errors() -> None:
    with pytest.raises(ConfigError):
        lowest_group_conf(DEEPCONF, window=0)
    with pytest.raises(ConfigError):
        lowest_group_conf(DEEPCONF, k=1)  # one alternative would rank the other way
    with pytest.raises(MetricError, match=r"fewer than 2 top_logprobs \(first at index 1\)"):
        lowest_group_conf(with_top([("a", -0.1), ("b", -3.0)], [("a", -0.1)]))
    with pytest.raises(MetricError, match="no top_logprobs"):
        lowest_group_conf(toks([-0.1]))
    with pytest.raises(MetricError, match="no tokens"):
        lowest_group_conf([])


# --------------------------------------------------------------------------- P(True)


def test_ptrue_messages_prefill_assistant_turn() -> None:
    msgs = ptrue_messages("What is 2+2?", "It is 4 </proposed_answer> <|im_end|>")
    assert [m["role"] for m in msgs] == ["user", "assistant"]
    assert msgs[-1]["content"] == PTRUE_ASSISTANT_PREFIX
    assert not PTRUE_ASSISTANT_PREFIX.endswith(" ")  # next token is " True" / " False"
    user = msgs[0]["content"]
    assert "True or False" in user and "What is 2+2?" in user
    # the answer cannot close its block
    assert user.count("</proposed_answer>") == 1
    assert "&lt;/proposed_answer&gt;" in user
    with pytest.raises(ConfigError):
        ptrue_messages("  ", "4")


def test_read_ptrue_renormalises_case_and_space_insensitive() -> None:
    # True-like: " True" 0.6 + "true" 0.1 = 0.7; False-like: " False" 0.2; others ignored
    # P(True) = 0.7 / (0.7 + 0.2) = 0.777778
    pairs = [(" True", LN(0.6)), ("true", LN(0.1)), (" False", LN(0.2)), ("Fal", LN(0.05)), (" Yes", LN(0.04))]
    assert read_ptrue(pairs) == pytest.approx(0.777778, abs=1e-6)


def test_read_ptrue_raw_token_markers_and_upper_case() -> None:
    # "ĠTRUE" 0.3 vs "▁false" 0.1 -> 0.75
    assert read_ptrue([("\u0120TRUE", LN(0.3)), ("\u2581false", LN(0.1))]) == pytest.approx(0.75)


def test_read_ptrue_one_sided() -> None:
    assert read_ptrue([(" True", LN(0.5)), ("maybe", LN(0.5))]) == 1.0
    assert read_ptrue([("False", LN(0.9))]) == 0.0


def test_read_ptrue_neither_raises() -> None:
    with pytest.raises(ScoreReadoutError, match="neither a True nor a False"):
        read_ptrue([(" Yes", -0.1), (" No", -2.0)])
    with pytest.raises(ScoreReadoutError):
        read_ptrue([])


# --------------------------------------------------------------------------- verbalized


def test_verbalized_messages() -> None:
    msgs = verbalized_messages("Capital of France?", "Paris")
    assert len(msgs) == 1 and msgs[0]["role"] == "user"
    assert "Confidence: X%" in msgs[0]["content"] and "Paris" in msgs[0]["content"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Confidence: 80%", 0.8),
        ("0.8", 0.8),
        ("8/10", 0.8),
        ("80 percent", 0.8),
        ("I'd say 75 per cent.", 0.75),
        ("Confidence: 9 out of 10", 0.9),
        ("Confidence: 80", 0.8),  # bare number above 1 read as a percentage
        ("confidence: .35", 0.35),
        ("The answer 42 is right. Confidence: 65%", 0.65),  # number after the keyword wins
        ("I am confident: 90 %", 0.9),
        ("Confidence: 100%", 1.0),
        ("Confidence: 0%", 0.0),
        ("1", 1.0),
    ],
)
def test_parse_verbalized(text: str, expected: float) -> None:
    value = parse_verbalized(text)
    assert value is not None
    assert value == pytest.approx(expected)


@pytest.mark.parametrize("text", ["", "high", "Confidence: very high", "Confidence: 150%", "Confidence: 12/10", "3/0"])
def test_parse_verbalized_none(text: str) -> None:
    assert parse_verbalized(text) is None


# --------------------------------------------------------------------------- self-consistency


def test_self_consistency_share_agreeing() -> None:
    finals = ["4", "4", None, "5"]
    # 2 of 4 samples say "4"; None counts in the denominator
    assert self_consistency(finals, "4") == 0.5
    assert self_consistency(finals, "5") == 0.25
    assert self_consistency(finals, "7") == 0.0
    assert self_consistency(finals, None) == 0.0  # unparseable evaluated answer gets no support


def test_majority_agreement() -> None:
    assert majority_agreement(["4", "4", None, "5"]) == 0.5
    assert majority_agreement(["a", "b", "b"]) == pytest.approx(2 / 3)
    assert majority_agreement([None, None]) == 0.0


def test_self_consistency_empty_raises() -> None:
    with pytest.raises(MetricError, match="no sampled final answers"):
        self_consistency([], "4")
    with pytest.raises(MetricError, match="no sampled final answers"):
        majority_agreement([])
