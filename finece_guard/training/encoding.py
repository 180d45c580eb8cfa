"""Scorer prompts as training tokens: the same tokens vLLM serves, followed by one bare digit.

Each state is rendered with the base model's own chat template from
:func:`~finece_guard.prompts.build_scorer_messages`, assistant turn continued
(``continue_final_message=True``): the same HF call vLLM makes for a scorer request with
``continue_final_message=True, add_generation_prompt=False``. The text is encoded without adding
special tokens again; :func:`check_prompt_tokens` verifies that this equals the chat template's own
tokenisation (vLLM's path) and that a digit written after the prompt is one new token (no space
merging into it), so the position trained is the position read out. Too long? The answer is cut
(its start kept), never the question or the prompt's end.
"""

from __future__ import annotations

from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase

from finece_guard.errors import SetupError
from finece_guard.prompts import ASSISTANT_PREFIX, DEFAULT_SCALE
from finece_guard.training.examples import TrainingExample
from finece_guard.types import CheckpointKind


def digit_token_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Token ids of "0".."9", each of which must be one token of its own."""
    ids: list[int] = []
    for level in DEFAULT_SCALE.levels:
        enc = tokenizer.encode(level, add_special_tokens=False)
        if len(enc) != 1 or tokenizer.decode(enc) != level:
            raise SetupError(
                f"the tokenizer encodes the score digit {level!r} as {enc}, not as one token of its own; the "
                "one-position FineCE readout needs single-token digits. Use a base model whose tokenizer splits "
                "digits (SmolLM2, Llama 3, Qwen 2 do)."
            )
        ids.append(enc[0])
    return ids


@dataclass(frozen=True)
class Encoded:
    """A tokenised example: prompt ids (the score is predicted after the last one) and its soft target."""

    input_ids: list[int]
    target: tuple[float, ...]
    kind: CheckpointKind
    label: float
    truncated: bool = False


class PromptEncoder:
    """Renders scorer prompts with the base model's chat template and encodes them for training."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, max_length: int = 512) -> None:
        if not getattr(tokenizer, "chat_template", None):
            raise SetupError("the base model's tokenizer has no chat template; the scorer prompt is a chat")
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.digit_ids = digit_token_ids(tokenizer)

    def render(self, messages: list[dict[str, str]]) -> str:
        """The prompt text, ending exactly at the assistant prefix (as vLLM renders it)."""
        text = self.tokenizer.apply_chat_template(messages, continue_final_message=True, tokenize=False)
        return str(text)

    def ids(self, messages: list[dict[str, str]]) -> list[int]:
        return list(self.tokenizer.encode(self.render(messages), add_special_tokens=False))

    def check(self, example: TrainingExample) -> None:
        """Verify on one example that training tokens = serving tokens and the next token is a bare digit."""
        check_prompt_tokens(self.tokenizer, example.messages(), self.digit_ids)

    def encode(self, example: TrainingExample) -> Encoded | None:
        """The example's ids, its answer cut (start kept) to fit ``max_length``; None if even no answer won't fit."""
        ids = self.ids(example.messages())
        truncated = False
        if len(ids) > self.max_length:
            cut = self._truncate(example)
            if cut is None:
                return None
            ids, truncated = cut, True
        return Encoded(ids, example.target, example.kind, example.label, truncated)

    def _truncate(self, example: TrainingExample) -> list[int] | None:
        if example.answer is None:
            return None
        empty = self.ids(example.messages(answer=""))
        if len(empty) > self.max_length:
            return None
        answer_ids = self.tokenizer.encode(example.answer, add_special_tokens=False)
        keep = min(len(answer_ids), self.max_length - len(empty))
        while keep > 0:
            text = str(self.tokenizer.decode(answer_ids[:keep])).rstrip("\ufffd")  # no half multi-byte character
            ids = self.ids(example.messages(answer=text))
            if len(ids) <= self.max_length:
                return ids
            keep -= max(1, len(ids) - self.max_length)  # escaping (& -> &amp;) can add tokens
        return empty


def check_prompt_tokens(
    tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]], digit_ids: list[int]
) -> None:
    """Raise :class:`SetupError` unless the trained tokens are the served tokens, followed by a bare digit."""
    text = str(tokenizer.apply_chat_template(messages, continue_final_message=True, tokenize=False))
    if not text.endswith(ASSISTANT_PREFIX):
        raise SetupError(
            f"the chat template does not end the prompt with the assistant prefix {ASSISTANT_PREFIX!r} "
            f"(it ends with {text[-40:]!r}); it does not support continuing the final message."
        )
    ids = list(tokenizer.encode(text, add_special_tokens=False))
    served = tokenizer.apply_chat_template(
        messages, continue_final_message=True, add_generation_prompt=False, tokenize=True, return_dict=False
    )
    if list(served) != ids:
        raise SetupError(
            "encoding the rendered prompt gives other tokens than the chat template's own tokenisation (what vLLM "
            "feeds the model); the tokenizer adds or merges special tokens. Training would not match serving."
        )
    for level, digit in zip(DEFAULT_SCALE.levels, digit_ids, strict=True):
        with_digit = list(tokenizer.encode(text + level, add_special_tokens=False))
        if with_digit != [*ids, digit]:
            raise SetupError(
                f"after the prompt (ending {ASSISTANT_PREFIX!r}) the digit {level!r} does not tokenise as one new "
                f"token: {with_digit[len(ids) - 1 :]} instead of {[ids[-1], digit]}. The prompt's trailing space "
                "merges with the digit in this tokenizer; the readout position would not be the trained one."
            )
