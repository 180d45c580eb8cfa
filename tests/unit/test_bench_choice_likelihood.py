"""The three multiple-choice readings of benchmarks/choice_likelihood pick what their scores say."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from benchmarks.choice_likelihood import constrained_greedy, plain_context, read_question, summarize
from finece_guard.data.records import AnswerKind, QARecord

RECORD = QARecord(
    id="arc_easy/q1", task="arc_easy", question="What do plants need to make food?",
    answers=("B", "sunlight"), choices=("sand", "sunlight", "a long word here", "salt"), kind=AnswerKind.CHOICE,
)  # fmt: skip


def _chat(user: str) -> str:
    return f"<user>{user}</user><assistant>"


def _letters_pick(letter: str):  # type: ignore[no-untyped-def]
    def next_token(context: str, candidates: Sequence[str]) -> list[float]:
        assert context.endswith("Answer: ") and "Options:" in context  # the generator's own prompt
        return [1.0 if c == letter else 0.0 for c in candidates]

    return next_token


def _continuation(context: str, text: str) -> tuple[float, int]:
    # plain context: summed log-prob favours "sand" (-1.0), per token "a long word here" (-2.0 / 4 tokens);
    # chat context: "salt"
    if context.startswith("<user>"):
        assert "Options:" not in context
        return (-0.5 if text == "salt" else -3.0), 1
    assert context == plain_context(RECORD) and "Options" not in context
    return {" sand": (-1.0, 1), " sunlight": (-1.5, 1), " a long word here": (-2.0, 4), " salt": (-4.0, 1)}[text]


def _greedy(context: str, options: Sequence[str]) -> int:
    assert context.startswith("<user>") and "Options:" not in context and list(options) == list(RECORD.choices)
    return 1


def test_each_reading_follows_its_own_scores() -> None:
    r = read_question(RECORD, next_token=_letters_pick("B"), continuation=_continuation, greedy=_greedy, chat=_chat)
    assert (r.letter, r.option_text, r.option_text_norm, r.option_text_chat, r.option_text_greedy) == (1, 0, 2, 3, 1)


END = 9


def _table(prefs: dict[tuple[int, ...], dict[int, float]]):  # type: ignore[no-untyped-def]
    """next-token log-probs by the decoded tail (after the 1-token head), default very unlikely."""

    def next_logprobs(ids: list[int]) -> list[float]:
        row = prefs.get(tuple(ids[1:]), {})
        return [row.get(t, -50.0) for t in range(10)]

    return next_logprobs


def test_constrained_greedy_follows_the_best_allowed_token_not_the_best_sequence() -> None:
    options = [[1, 2, END], [3, 4, END], [3, 5, END]]
    # token 3 beats 1 at the first step, though option 0 as a whole is far likelier than 1 or 2
    prefs = {(): {1: -0.7, 3: -0.6, 7: -0.1}, (1,): {2: -0.01}, (3,): {4: -5.0, 5: -4.0}}
    assert constrained_greedy(_table(prefs), [0], options) == 2


def test_constrained_greedy_ends_a_prefix_option_through_the_end_token() -> None:
    options = [[1, END], [1, 2, END]]
    assert constrained_greedy(_table({(): {1: -0.1}, (1,): {END: -0.2, 2: -1.0}}), [0], options) == 0
    assert constrained_greedy(_table({(): {1: -0.1}, (1,): {END: -2.0, 2: -1.0}}), [0], options) == 1
    assert constrained_greedy(_table({}), [0], [[4, END], [4, END]]) == 0  # identical options: the first


def test_summary_counts_accuracy_and_position_bias() -> None:
    readings = [
        read_question(RECORD, next_token=_letters_pick(x), continuation=_continuation, greedy=_greedy, chat=_chat)
        for x in ("B", "B", "C", "B")
    ]
    table = summarize([RECORD] * 4, readings)
    assert table["letter"]["accuracy"] == pytest.approx(0.75)
    assert (table["letter"]["top_position"], table["letter"]["top_position_share"]) == ("B", 0.75)
    assert table["option-text"]["accuracy"] == 0.0 and table["option-text-chat"]["top_position"] == "D"
