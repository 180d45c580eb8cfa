"""Unit tests for finece_guard.runtime.bci: eq. 5 of the paper with hand-computed golden values.

Eq. 5:  c'_N = c_N ;  c'_j = a*c_j + (1-a) * mean(c'_{j+1} .. c'_{min(j+w, N)})  for j < N
"""

from __future__ import annotations

import math

import pytest

from finece_guard.errors import ConfigError, FineCEError
from finece_guard.runtime.bci import (
    LookAheadResult,
    integrate_paths,
    look_ahead,
    refine,
    split_paragraphs,
)
from finece_guard.types import CheckpointKind, Score

# --------------------------------------------------------------------------- refine


def test_refine_window_1_golden() -> None:
    out = refine([0.2, 0.6, 1.0], alpha=0.5, window=1)
    # c'3 = 1.0
    # c'2 = 0.5*0.6 + 0.5*1.0 = 0.3 + 0.5 = 0.8
    # c'1 = 0.5*0.2 + 0.5*0.8 = 0.1 + 0.4 = 0.5
    assert out == pytest.approx([0.5, 0.8, 1.0])


def test_refine_window_2_golden() -> None:
    out = refine([0.2, 0.6, 1.0], alpha=0.5, window=2)
    # c'3 = 1.0
    # c'2 = 0.5*0.6 + 0.5*mean(1.0) = 0.3 + 0.5 = 0.8          (only one checkpoint remains)
    # c'1 = 0.5*0.2 + 0.5*mean(0.8, 1.0) = 0.1 + 0.5*0.9 = 0.55
    assert out == pytest.approx([0.55, 0.8, 1.0])


def test_refine_uses_refined_not_raw_future_values() -> None:
    out = refine([0.0, 0.0, 1.0], alpha=0.5, window=1)
    # c'3 = 1.0
    # c'2 = 0.5*0.0 + 0.5*1.0 = 0.5
    # c'1 = 0.5*0.0 + 0.5*c'2 = 0.25   (raw c2 = 0.0 would give 0.0)
    assert out == pytest.approx([0.25, 0.5, 1.0])


def test_refine_four_checkpoints_window_2_golden() -> None:
    out = refine([0.4, 0.8, 0.2, 0.6], alpha=0.5, window=2)
    # c'4 = 0.6
    # c'3 = 0.5*0.2 + 0.5*mean(0.6)        = 0.1 + 0.3           = 0.4
    # c'2 = 0.5*0.8 + 0.5*mean(0.4, 0.6)   = 0.4 + 0.25          = 0.65
    # c'1 = 0.5*0.4 + 0.5*mean(0.65, 0.4)  = 0.2 + 0.5*0.525     = 0.4625
    assert out == pytest.approx([0.4625, 0.65, 0.4, 0.6])


def test_refine_alpha_not_half_golden() -> None:
    out = refine([0.1, 0.5, 0.9], alpha=0.8, window=1)
    # c'3 = 0.9
    # c'2 = 0.8*0.5 + 0.2*0.9  = 0.40 + 0.18  = 0.58
    # c'1 = 0.8*0.1 + 0.2*0.58 = 0.08 + 0.116 = 0.196
    assert out == pytest.approx([0.196, 0.58, 0.9])


def test_refine_single_checkpoint_unchanged() -> None:
    # j = N: c'_N = c_N, whatever alpha/window
    assert refine([0.37], alpha=0.1, window=3) == [0.37]


def test_refine_empty_is_empty() -> None:
    assert refine([], alpha=0.5, window=2) == []


def test_refine_window_larger_than_remaining() -> None:
    # window 10 over 3 checkpoints averages over what remains -> same as window 2 here:
    # c'3 = 1.0 ; c'2 = 0.3 + 0.5*1.0 = 0.8 ; c'1 = 0.1 + 0.5*mean(0.8, 1.0) = 0.55
    assert refine([0.2, 0.6, 1.0], alpha=0.5, window=10) == pytest.approx([0.55, 0.8, 1.0])


def test_refine_alpha_1_keeps_raw() -> None:
    raw = [0.2, 0.6, 1.0, 0.3]
    # c'_j = 1*c_j + 0*(...) = c_j
    assert refine(raw, alpha=1.0, window=2) == pytest.approx(raw)


def test_refine_alpha_0_is_pure_future_average() -> None:
    out = refine([0.1, 0.9, 0.3, 0.7], alpha=0.0, window=2)
    # c'4 = 0.7
    # c'3 = mean(0.7) = 0.7
    # c'2 = mean(0.7, 0.7) = 0.7
    # c'1 = mean(0.7, 0.7) = 0.7    -> every value collapses onto the last one
    assert out == pytest.approx([0.7, 0.7, 0.7, 0.7])


def test_refine_alpha_0_ignores_raw_values() -> None:
    out = refine([0.9, 0.2, 0.4], alpha=0.0, window=2)
    # c'3 = 0.4 ; c'2 = mean(0.4) = 0.4 ; c'1 = mean(c'2, c'3) = mean(0.4, 0.4) = 0.4
    # raw c1 = 0.9 and c2 = 0.2 are ignored entirely
    assert out == pytest.approx([0.4, 0.4, 0.4])


def test_refine_none_entries_skipped_and_kept() -> None:
    out = refine([0.2, None, 0.6, None, 1.0], alpha=0.5, window=1)
    # None entries are removed, scored list is [0.2, 0.6, 1.0] -> [0.5, 0.8, 1.0] (as above)
    assert out[1] is None
    assert out[3] is None
    assert [out[0], out[2], out[4]] == pytest.approx([0.5, 0.8, 1.0])
    assert len(out) == 5


def test_refine_trailing_none_last_scored_is_endpoint() -> None:
    out = refine([0.2, 0.6, None], alpha=0.5, window=2)
    # scored list [0.2, 0.6]: c'(0.6) = 0.6 (endpoint) ; c'(0.2) = 0.1 + 0.5*0.6 = 0.4
    assert out[2] is None
    assert out[:2] == pytest.approx([0.4, 0.6])


def test_refine_all_none() -> None:
    assert refine([None, None], alpha=0.5, window=2) == [None, None]


def test_refine_does_not_mutate_input() -> None:
    raw = [0.2, None, 0.6]
    refine(raw, alpha=0.5, window=1)
    assert raw == [0.2, None, 0.6]


@pytest.mark.parametrize("alpha", [-0.1, 1.1, math.nan])
def test_refine_invalid_alpha_raises_config_error(alpha: float) -> None:
    with pytest.raises(ConfigError, match="alpha"):
        refine([0.2, 0.6], alpha=alpha, window=1)


@pytest.mark.parametrize("window", [0, -3])
def test_refine_invalid_window_raises_config_error(window: int) -> None:
    with pytest.raises(ConfigError, match="window"):
        refine([0.2, 0.6], alpha=0.5, window=window)


def test_config_error_is_value_error_and_finece_error() -> None:
    with pytest.raises(ValueError):
        refine([0.5], alpha=2.0)
    with pytest.raises(FineCEError):
        refine([0.5], alpha=2.0)


# --------------------------------------------------------------------------- integrate_paths


def test_integrate_paths_no_paths_unchanged() -> None:
    assert integrate_paths(0.37, [], alpha=0.5) == 0.37


def test_integrate_paths_only_empty_paths_unchanged() -> None:
    assert integrate_paths(0.37, [[], []], alpha=0.5) == 0.37


def test_integrate_paths_depth_1() -> None:
    # firsts = [0.6, 1.0] -> mean 0.8 ; c' = 0.5*0.2 + 0.5*0.8 = 0.1 + 0.4 = 0.5
    assert integrate_paths(0.2, [[0.6], [1.0]], alpha=0.5) == pytest.approx(0.5)


def test_integrate_paths_depth_1_alpha_quarter() -> None:
    # firsts = [0.4, 0.8, 0.0] -> mean 0.4 ; c' = 0.25*1.0 + 0.75*0.4 = 0.25 + 0.3 = 0.55
    assert integrate_paths(1.0, [[0.4], [0.8], [0.0]], alpha=0.25) == pytest.approx(0.55)


def test_integrate_paths_depth_2_path_refined_first() -> None:
    # path [0.6, 1.0] refined with window 2: p'2 = 1.0 ; p'1 = 0.5*0.6 + 0.5*1.0 = 0.8
    # c' = 0.5*0.2 + 0.5*0.8 = 0.5      (raw first 0.6 would give 0.4)
    assert integrate_paths(0.2, [[0.6, 1.0]], alpha=0.5) == pytest.approx(0.5)


def test_integrate_paths_depth_3_path_uses_whole_depth_as_window() -> None:
    # path [0.2, 0.6, 1.0] refined with window 3 (= its depth):
    #   p'3 = 1.0 ; p'2 = 0.3 + 0.5*1.0 = 0.8 ; p'1 = 0.1 + 0.5*mean(0.8, 1.0) = 0.55
    # c' = 0.5*0.0 + 0.5*0.55 = 0.275     (window 1 would give p'1 = 0.5 -> 0.25)
    assert integrate_paths(0.0, [[0.2, 0.6, 1.0]], alpha=0.5) == pytest.approx(0.275)


def test_integrate_paths_mixed_depths_and_empty_path_skipped() -> None:
    # [0.6, 1.0] -> first refined 0.8 ; [0.4] -> 0.4 ; [] skipped
    # mean(0.8, 0.4) = 0.6 ; c' = 0.5*0.2 + 0.5*0.6 = 0.1 + 0.3 = 0.4
    assert integrate_paths(0.2, [[0.6, 1.0], [], [0.4]], alpha=0.5) == pytest.approx(0.4)


def test_integrate_paths_alpha_1_keeps_current() -> None:
    assert integrate_paths(0.3, [[0.9], [0.1]], alpha=1.0) == pytest.approx(0.3)


@pytest.mark.parametrize("alpha", [-0.5, 1.5])
def test_integrate_paths_invalid_alpha(alpha: float) -> None:
    with pytest.raises(ConfigError):
        integrate_paths(0.5, [[0.5]], alpha=alpha)


# --------------------------------------------------------------------------- split_paragraphs


def test_split_paragraphs_cumulative_prefixes() -> None:
    assert split_paragraphs("a\nb\nc\n", 2) == ["a\n", "a\nb\n"]


def test_split_paragraphs_depth_larger_than_available() -> None:
    assert split_paragraphs("a\nb\n", 5) == ["a\n", "a\nb\n"]


def test_split_paragraphs_unterminated_last_paragraph_counts() -> None:
    assert split_paragraphs("a\nb", 2) == ["a\n", "a\nb"]


def test_split_paragraphs_no_newline() -> None:
    assert split_paragraphs("just one", 3) == ["just one"]


def test_split_paragraphs_blank_lines_are_not_paragraphs() -> None:
    # leading/inner blank lines do not close a paragraph; the prefix keeps them
    assert split_paragraphs("\n\na\n\n  \nb\n", 2) == ["\n\na\n", "\n\na\n\n  \nb\n"]


def test_split_paragraphs_empty_and_whitespace_only() -> None:
    assert split_paragraphs("", 2) == []
    assert split_paragraphs("   \n \n  ", 2) == []


def test_split_paragraphs_trailing_whitespace_after_last_newline_ignored() -> None:
    assert split_paragraphs("a\n   ", 3) == ["a\n"]


def test_split_paragraphs_depth_zero() -> None:
    assert split_paragraphs("a\nb\n", 0) == []


def test_split_paragraphs_depth_1_stops_at_first() -> None:
    assert split_paragraphs("first line\nsecond\n", 1) == ["first line\n"]


# --------------------------------------------------------------------------- look_ahead (fakes)


class FakeSampler:
    """Returns fixed continuations and records every call."""

    def __init__(self, continuations: list[str]) -> None:
        self.continuations = continuations
        self.calls: list[dict[str, object]] = []

    async def sample_continuations(
        self, question: str, answer_prefix: str, *, n: int, max_tokens: int
    ) -> list[str]:
        self.calls.append(
            {"question": question, "answer_prefix": answer_prefix, "n": n, "max_tokens": max_tokens}
        )
        return list(self.continuations)


class FakeScorer:
    """Scores an answer by table lookup and records every call."""

    def __init__(self, table: dict[str, float]) -> None:
        self.table = table
        self.calls: list[tuple[str, str | None, CheckpointKind]] = []

    async def ascore(self, question: str, answer: str | None, kind: CheckpointKind) -> Score:
        self.calls.append((question, answer, kind))
        assert answer is not None
        return Score(value=self.table[answer], spread=0.0, mass=1.0)


@pytest.mark.asyncio
async def test_look_ahead_depth_2_golden() -> None:
    prefix = "Step 0.\n"
    sampler = FakeSampler(["A1\nA2\nA3\n", "B1\n"])
    scorer = FakeScorer(
        {
            prefix + "A1\n": 0.6,
            prefix + "A1\nA2\n": 1.0,
            prefix + "B1\n": 0.4,
        }
    )
    res = await look_ahead(
        "Q?",
        prefix,
        0.2,
        sampler=sampler,
        scorer=scorer,
        width=2,
        depth=2,
        alpha=0.5,
        max_tokens_per_step=10,
    )
    # sampler asked for n = width = 2 and max_tokens = 10 tokens/step * depth 2 = 20
    assert sampler.calls == [{"question": "Q?", "answer_prefix": prefix, "n": 2, "max_tokens": 20}]
    # steps: path A has 2 (A3 is beyond depth), path B has 1 -> 3 scoring calls
    assert len(scorer.calls) == 3
    assert {c[1] for c in scorer.calls} == set(scorer.table)
    assert all(q == "Q?" and k is CheckpointKind.PARTIAL for q, _, k in scorer.calls)
    assert res.paths == ((0.6, 1.0), (0.4,))
    # path A refined: p'2 = 1.0 ; p'1 = 0.5*0.6 + 0.5*1.0 = 0.8 ; path B: 0.4
    # future = mean(0.8, 0.4) = 0.6 ; value = 0.5*0.2 + 0.5*0.6 = 0.1 + 0.3 = 0.4
    assert res.value == pytest.approx(0.4)
    assert res.raw == 0.2
    assert res.continuations == ("A1\nA2\nA3\n", "B1\n")
    assert isinstance(res, LookAheadResult)


@pytest.mark.asyncio
async def test_look_ahead_depth_1_width_3_golden() -> None:
    sampler = FakeSampler(["x\nmore\n", "y", "z\n"])
    scorer = FakeScorer({"P x\n": 0.9, "P y": 0.3, "P z\n": 0.6})
    res = await look_ahead(
        "Q",
        "P ",
        0.5,
        sampler=sampler,
        scorer=scorer,
        width=3,
        depth=1,
        alpha=0.25,
        max_tokens_per_step=64,
    )
    assert sampler.calls[0]["n"] == 3
    assert sampler.calls[0]["max_tokens"] == 64  # 64 * depth 1
    # one step per path -> 3 scoring calls
    assert len(scorer.calls) == 3
    assert res.paths == ((0.9,), (0.3,), (0.6,))
    # future = mean(0.9, 0.3, 0.6) = 0.6 ; value = 0.25*0.5 + 0.75*0.6 = 0.125 + 0.45 = 0.575
    assert res.value == pytest.approx(0.575)


@pytest.mark.asyncio
async def test_look_ahead_empty_continuations_leave_raw() -> None:
    sampler = FakeSampler(["", "   "])
    scorer = FakeScorer({})
    res = await look_ahead("Q", "P", 0.3, sampler=sampler, scorer=scorer, width=2, depth=2)
    # no paragraph in either continuation -> no scoring, no paths -> value = raw
    assert scorer.calls == []
    assert res.paths == ((), ())
    assert res.value == 0.3


@pytest.mark.asyncio
async def test_look_ahead_invalid_depth_raises() -> None:
    sampler = FakeSampler(["a\n"])
    with pytest.raises(ConfigError, match="depth"):
        await look_ahead("Q", "P", 0.3, sampler=sampler, scorer=FakeScorer({}), depth=0)
    assert sampler.calls == []


@pytest.mark.asyncio
async def test_look_ahead_invalid_width_or_alpha_raises() -> None:
    sampler = FakeSampler(["a\n"])
    with pytest.raises(ConfigError):
        await look_ahead("Q", "P", 0.3, sampler=sampler, scorer=FakeScorer({}), width=0)
    with pytest.raises(ConfigError):
        await look_ahead("Q", "P", 0.3, sampler=sampler, scorer=FakeScorer({}), alpha=1.5)
    assert sampler.calls == []
