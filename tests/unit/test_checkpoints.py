"""Unit tests for finece_guard.runtime.checkpoints: strategies, truncated entropy and spec parsing."""

from __future__ import annotations

import math

import pytest

from finece_guard.errors import ConfigError
from finece_guard.runtime.checkpoints import (
    CheckpointStrategy,
    Entropy,
    ParagraphEnd,
    Periodic,
    parse_strategy,
    topk_entropy,
)
from finece_guard.types import TokenEvent

LN2 = math.log(2.0)
TWO_EQUAL = (("a", math.log(0.5)), ("b", math.log(0.5)))


def toks(*texts: str, top: tuple[tuple[str, float], ...] = ()) -> tuple[TokenEvent, ...]:
    """Token events for ``texts``; ``top`` is put on the last one."""
    events = [TokenEvent(index=i, text=t) for i, t in enumerate(texts)]
    if events and top:
        events[-1] = TokenEvent(index=len(texts) - 1, text=texts[-1], top_logprobs=top)
    return tuple(events)


# --------------------------------------------------------------------------- ParagraphEnd


def test_paragraph_line_break_closes_checkpoint() -> None:
    t = toks("The", " cat", " sat", " down", ".\n")
    assert ParagraphEnd().reason(t, since_last=5) == "paragraph end"


def test_paragraph_no_newline_no_checkpoint() -> None:
    t = toks("The", " cat", " sat", " down", ".")
    assert ParagraphEnd().reason(t, since_last=5) is None


def test_paragraph_empty_tokens() -> None:
    assert ParagraphEnd().reason((), since_last=0) is None


def test_paragraph_min_tokens_counts_non_whitespace_only() -> None:
    # non-whitespace tokens: "The", "cat" -> 2 ( " ", " ", "\n" do not count)
    t = toks("The", " ", "cat", " ", "\n")
    assert ParagraphEnd(min_tokens=3).reason(t, since_last=5) is None
    assert ParagraphEnd(min_tokens=2).reason(t, since_last=5) == "paragraph end"


def test_paragraph_min_tokens_counts_since_last_checkpoint_only() -> None:
    t = toks("A", "B", "C", "D", "\n", "E", "\n")
    # since the previous checkpoint (after the first "\n"): "E", "\n" -> 1 content token
    assert ParagraphEnd(min_tokens=4).reason(t, since_last=2) is None
    assert ParagraphEnd(min_tokens=1).reason(t, since_last=2) == "paragraph end"
    # counting from the start: A B C D E -> 5 content tokens
    assert ParagraphEnd(min_tokens=5).reason(t, since_last=7) == "paragraph end"
    assert ParagraphEnd(min_tokens=6).reason(t, since_last=7) is None


def test_paragraph_newline_token_with_text_counts_as_content() -> None:
    # "D.\n" has non-whitespace content -> 4 content tokens with default min_tokens=4
    t = toks("A", "B", "C", "D.\n")
    assert ParagraphEnd().reason(t, since_last=4) == "paragraph end"


def test_paragraph_blank_line_waits_for_empty_line() -> None:
    strat = ParagraphEnd(blank_line=True)
    t = toks("A", "B", "C", "D", "\n")
    assert strat.reason(t, since_last=5) is None  # single line break only
    t2 = (*t, TokenEvent(index=5, text="\n"))
    assert strat.reason(t2, since_last=6) == "paragraph end"  # "\n" + "\n" = blank line


def test_paragraph_blank_line_single_token() -> None:
    t = toks("A", "B", "C", "D.\n\n")
    assert ParagraphEnd(blank_line=True).reason(t, since_last=4) == "paragraph end"
    # the default (blank_line=False) fires on it too
    assert ParagraphEnd().reason(t, since_last=4) == "paragraph end"


def test_paragraph_blank_line_still_respects_min_tokens() -> None:
    t = toks("A", "\n", "\n")
    assert ParagraphEnd(blank_line=True).reason(t, since_last=3) is None  # 1 content token < 4
    assert ParagraphEnd(blank_line=True, min_tokens=1).reason(t, since_last=3) == "paragraph end"


def test_paragraph_blank_line_not_fooled_by_older_blank_line() -> None:
    # "a\n\n" was a blank line ignored for min_tokens; "bc\n" then ends a *non-empty* line.
    t = toks("a\n\n", "b", "c\n")
    assert ParagraphEnd(blank_line=True, min_tokens=3).reason(t, since_last=3) is None


@pytest.mark.parametrize("n", [0, -1])
def test_paragraph_invalid_min_tokens(n: int) -> None:
    with pytest.raises(ConfigError, match="min_tokens"):
        ParagraphEnd(min_tokens=n)


# --------------------------------------------------------------------------- Periodic


def test_periodic_fires_at_every() -> None:
    strat = Periodic(every=3)
    t = toks("a", "b", "c", "d")
    assert strat.reason(t[:2], since_last=2) is None
    assert strat.reason(t[:3], since_last=3) == "every 3 tokens"
    assert strat.reason(t, since_last=4) == "every 3 tokens"  # overdue still fires


def test_periodic_default_every() -> None:
    assert Periodic().every == 32
    assert Periodic().reason(toks("x"), since_last=31) is None
    assert Periodic().reason(toks("x"), since_last=32) == "every 32 tokens"


@pytest.mark.parametrize("n", [0, -5])
def test_periodic_invalid_every(n: int) -> None:
    with pytest.raises(ConfigError, match="every"):
        Periodic(every=n)


# --------------------------------------------------------------------------- topk_entropy


def test_topk_entropy_two_equal_alternatives_is_ln2() -> None:
    # H = -(0.5 ln 0.5 + 0.5 ln 0.5) = ln 2 ~ 0.6931
    assert topk_entropy(TWO_EQUAL) == pytest.approx(LN2)


def test_topk_entropy_renormalises_truncated_topk() -> None:
    # 0.25 + 0.25 renormalised -> 0.5 / 0.5 -> ln 2
    pairs = (("a", math.log(0.25)), ("b", math.log(0.25)))
    assert topk_entropy(pairs) == pytest.approx(LN2)


def test_topk_entropy_residual_bucket() -> None:
    # outcomes 0.25, 0.25 and residual 0.5:
    # H = -(2 * 0.25 ln 0.25 + 0.5 ln 0.5) = 0.5 ln 4 + 0.5 ln 2 = ln 2 + 0.5 ln 2 = 1.5 ln 2
    pairs = (("a", math.log(0.25)), ("b", math.log(0.25)))
    assert topk_entropy(pairs, residual_bucket=True) == pytest.approx(1.5 * LN2)


def test_topk_entropy_residual_bucket_no_missing_mass() -> None:
    # total already 1.0 -> no extra outcome -> still ln 2
    assert topk_entropy(TWO_EQUAL, residual_bucket=True) == pytest.approx(LN2)


def test_topk_entropy_degenerate_cases() -> None:
    assert topk_entropy(()) == 0.0
    assert topk_entropy((("a", 0.0),)) == pytest.approx(0.0)  # p = 1
    assert topk_entropy((("a", -math.inf), ("b", -math.inf))) == 0.0  # zero mass
    # NaN logprobs are dropped: only "a" remains -> 0
    assert topk_entropy((("a", math.log(0.5)), ("b", math.nan))) == pytest.approx(0.0)


def test_topk_entropy_four_equal_is_ln4() -> None:
    pairs = tuple((c, math.log(0.25)) for c in "abcd")
    assert topk_entropy(pairs) == pytest.approx(math.log(4.0))


# --------------------------------------------------------------------------- Entropy strategy


def test_entropy_fires_above_threshold() -> None:
    t = toks("x", "y", top=TWO_EQUAL)
    assert Entropy(threshold=0.5, min_gap=2).reason(t, since_last=2) == "entropy 0.69 > 0.5"


def test_entropy_below_threshold() -> None:
    t = toks("x", "y", top=TWO_EQUAL)
    assert Entropy(threshold=0.7, min_gap=1).reason(t, since_last=2) is None  # ln 2 = 0.693


def test_entropy_min_gap() -> None:
    t = toks("x", "y", top=TWO_EQUAL)
    strat = Entropy(threshold=0.5, min_gap=3)
    assert strat.reason(t, since_last=2) is None
    assert strat.reason(t, since_last=3) == "entropy 0.69 > 0.5"


def test_entropy_residual_bucket_changes_decision() -> None:
    quarter = (("a", math.log(0.25)), ("b", math.log(0.25)))
    t = toks("x", top=quarter)
    # without bucket: ln 2 = 0.69 < 1.0 ; with bucket: 1.5 ln 2 = 1.04 > 1.0
    assert Entropy(threshold=1.0, min_gap=1).reason(t, since_last=1) is None
    assert (
        Entropy(threshold=1.0, min_gap=1, residual_bucket=True).reason(t, since_last=1)
        == "entropy 1.04 > 1.0"
    )


def test_entropy_no_top_logprobs_is_none() -> None:
    t = toks("x", "y")
    assert Entropy(threshold=0.1, min_gap=1).reason(t, since_last=10) is None
    assert Entropy(threshold=0.1, min_gap=1).reason((), since_last=10) is None


@pytest.mark.parametrize("kwargs", [{"threshold": 0.0}, {"threshold": -1.0}, {"min_gap": 0}])
def test_entropy_invalid_config(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        Entropy(**kwargs)  # type: ignore[arg-type]


def test_entropy_nan_threshold_rejected() -> None:
    with pytest.raises(ConfigError):
        Entropy(threshold=math.nan)


# --------------------------------------------------------------------------- parse_strategy


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("paragraph", ParagraphEnd()),
        ("paragraph:2", ParagraphEnd(min_tokens=2)),
        ("periodic", Periodic()),
        ("periodic:50", Periodic(every=50)),
        ("entropy", Entropy()),
        ("entropy:1.2", Entropy(threshold=1.2)),
    ],
)
def test_parse_strategy_valid(spec: str, expected: CheckpointStrategy) -> None:
    got = parse_strategy(spec)
    assert got == expected
    assert type(got) is type(expected)
    assert isinstance(got, CheckpointStrategy)


def test_parse_strategy_defaults() -> None:
    assert parse_strategy("paragraph").min_tokens == 4  # type: ignore[attr-defined]
    assert parse_strategy("periodic").every == 32  # type: ignore[attr-defined]
    assert parse_strategy("entropy").threshold == 1.5  # type: ignore[attr-defined]


def test_parse_strategy_not_a_number() -> None:
    with pytest.raises(ConfigError, match="not a number"):
        parse_strategy("periodic:x")
    with pytest.raises(ConfigError, match="not a number"):
        parse_strategy("periodic:1.5")


def test_parse_strategy_unknown_name() -> None:
    with pytest.raises(ConfigError, match="unknown checkpoint strategy") as ei:
        parse_strategy("nope")
    assert "periodic:N" in str(ei.value)
    with pytest.raises(ConfigError, match="unknown"):
        parse_strategy("")


@pytest.mark.parametrize(
    ("spec", "match"),
    [("periodic:0", "every"), ("paragraph:0", "min_tokens"), ("entropy:-1", "threshold")],
)
def test_parse_strategy_invalid_value_keeps_specific_config_error(spec: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_strategy(spec)


def test_parse_strategy_entropy_nan_rejected() -> None:
    with pytest.raises(ConfigError):
        parse_strategy("entropy:nan")
