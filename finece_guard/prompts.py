"""The FineCE scorer prompt and the score readout: one source of truth for inference and training.

The scorer is the generator model plus a LoRA adapter that reads an instruction, a question
and (part of) an answer, and answers with **one digit** on a ten-level scale (paper Fig. 3
uses a decimal in [0, 1]; one digit keeps the readout a single forward step on tokenizers that
split numbers). The score is the **expected value** over the digits' probabilities at that one
position, renormalised over the digits; the spread is the distribution's standard deviation.

Prompt hygiene: user text (question and answer) is HTML-escaped and placed between tags. An
answer containing ``</answer>``, ``Confidence: 9`` or a chat-template special token such as
``<|im_end|>`` therefore stays inert text inside the answer block: it cannot close the block,
end the user turn or write into the assistant turn, where the readout happens. Inert is not
unread, though: a LoRA can still copy a digit it reads. At inference, text addressed to the rater
(numeric self-ratings, template tokens, instructions to the rater) is therefore also removed
first (:mod:`finece_guard.rating_filter`, ``strip_rater_text=True``); training builds its prompts
with ``strip_rater_text=False``, so the adapter learns to ignore forged text by itself and the
filter stays a second line.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from finece_guard import checks
from finece_guard.errors import ConfigError, ScoreReadoutError
from finece_guard.rating_filter import filter_state
from finece_guard.types import CheckpointKind, Score

INSTRUCTION = (
    "You are a helpful AI assistant. You will be given a question, possibly followed by a "
    "partial or complete answer to it. Estimate how likely it is that the final answer will be "
    "correct. Rate it on a scale from 0 (certainly wrong) to 9 (certainly correct) and output "
    "only that one digit."
)

#: Text the assistant turn starts with; the next token is the score digit.
ASSISTANT_PREFIX = "Confidence (0-9): "

_STATE_NOTE = {
    CheckpointKind.QUESTION: "No answer has been written yet.",
    CheckpointKind.PARTIAL: "The answer below is incomplete; it is still being written.",
    CheckpointKind.FINAL: "The answer below is complete.",
}


def sanitize(text: str) -> str:
    """Escape user text so it cannot forge a delimiter or a chat-template special token."""
    return html.escape(text, quote=False)


@dataclass(frozen=True)
class ScorerPrompt:
    """The scorer's chat messages for one state, and the names of the rater-text patterns removed first."""

    messages: list[dict[str, str]]
    rater_text: tuple[str, ...] = ()


def scorer_prompt(
    question: str, answer: str | None, kind: CheckpointKind, *, strip_rater_text: bool = True
) -> ScorerPrompt:
    """The scorer prompt for one state; the last (assistant) message is to be continued.

    Send the messages with ``continue_final_message=True, add_generation_prompt=False`` (vLLM) or
    ``apply_chat_template(..., continue_final_message=True)`` (transformers).
    ``strip_rater_text``: remove text addressed to the rater from question and answer first
    (:func:`finece_guard.rating_filter.filter_state`; its pattern names become ``rater_text``);
    training passes False.
    """
    checks.text("question", question, example="What is the capital of France?")
    try:
        kind = CheckpointKind(kind)
    except ValueError:
        valid = ", ".join(repr(k.value) for k in CheckpointKind)
        raise ConfigError(f"kind={kind!r} is not a checkpoint kind; use one of {valid}, e.g. kind='final'") from None
    if kind is CheckpointKind.QUESTION:
        answer = None
    elif not isinstance(answer, str):
        raise ConfigError(
            f"answer={answer!r}: a {kind.value} checkpoint needs the answer text, e.g. answer='Paris.' "
            "(or kind='question' to score the question alone)"
        )
    if not isinstance(strip_rater_text, bool):
        raise ConfigError(f"strip_rater_text={strip_rater_text!r} must be True or False, e.g. strip_rater_text=True")
    removed: tuple[str, ...] = ()
    if strip_rater_text:
        state = filter_state(question, answer)
        question, answer, removed = state.question, state.answer, state.removed
    parts = [INSTRUCTION, "", f"<question>\n{sanitize(question)}\n</question>"]
    parts.append(_STATE_NOTE[kind])
    if answer is not None:
        parts.append(f"<answer>\n{sanitize(answer)}\n</answer>")
    messages = [
        {"role": "user", "content": "\n".join(parts)},
        {"role": "assistant", "content": ASSISTANT_PREFIX},
    ]
    return ScorerPrompt(messages, removed)


def build_scorer_messages(
    question: str, answer: str | None, kind: CheckpointKind, *, strip_rater_text: bool = True
) -> list[dict[str, str]]:
    """The messages of :func:`scorer_prompt` (the same arguments)."""
    return scorer_prompt(question, answer, kind, strip_rater_text=strip_rater_text).messages


@dataclass(frozen=True)
class ScoreScale:
    """Maps score tokens to confidence values and confidence labels to training targets."""

    levels: tuple[str, ...] = tuple(str(d) for d in range(10))

    def value_of(self, token: str) -> float | None:
        """Confidence value of a score token (surrounding whitespace ignored), else None."""
        key = token.strip()
        if key not in self.levels:
            return None
        return self.levels.index(key) / (len(self.levels) - 1)

    def target_for(self, confidence: float) -> str:
        """The score token to train on for a label in [0, 1] (nearest level)."""
        checks.probability("confidence", confidence, example=0.5)
        return self.levels[round(confidence * (len(self.levels) - 1))]

    def read(self, logprobs: Iterable[tuple[str, float]], *, min_mass: float = 0.01) -> Score:
        """Expected value and spread over the score tokens among ``(token, logprob)`` pairs.

        Several tokens may map to one level (``"7"`` and ``" 7"``); their probabilities add up.
        Raises :class:`ScoreReadoutError` when the score tokens carry less than ``min_mass``
        of the probability (the scorer did not answer with a score), instead of returning 0.
        """
        per_level: dict[float, float] = {}
        for token, lp in logprobs:
            value = self.value_of(token)
            if value is None or lp is None or math.isnan(lp):
                continue
            per_level[value] = per_level.get(value, 0.0) + math.exp(lp)
        mass = sum(per_level.values())
        if mass < min_mass or mass == 0.0:
            raise ScoreReadoutError(
                f"score tokens carry {mass:.4f} of the probability (< {min_mass}); the scorer "
                "did not answer with a score. Is the model the FineCE adapter, and does the "
                "request ask for enough top_logprobs?"
            )
        dist = {v: p / mass for v, p in per_level.items()}
        mean = sum(v * p for v, p in dist.items())
        var = sum(p * (v - mean) ** 2 for v, p in dist.items())
        return Score(
            value=min(1.0, max(0.0, mean)),
            spread=math.sqrt(max(var, 0.0)),
            mass=min(1.0, mass),
            distribution=tuple(sorted(dist.items())),
        )


DEFAULT_SCALE = ScoreScale()


def read_score_from_top_logprobs(
    top_logprobs: Mapping[str, float] | Iterable[tuple[str, float]],
    *,
    scale: ScoreScale = DEFAULT_SCALE,
    min_mass: float = 0.01,
) -> Score:
    """Convenience wrapper accepting a ``{token: logprob}`` mapping or pairs."""
    pairs = top_logprobs.items() if isinstance(top_logprobs, Mapping) else top_logprobs
    return scale.read(pairs, min_mass=min_mass)
