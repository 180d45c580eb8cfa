"""Batches and the loss: left-padded batches, and cross-entropy at the score position only.

Only the logits after the prompt's last token contribute: the cross-entropy between the soft
target (:func:`~finece_guard.training.examples.soft_target`, whose mean is the label) and the
*full-vocabulary* log-softmax at that position, with target mass only on the ten digit tokens, so
the model also learns to put its mass on digits at all. The model is asked for that one
position's logits (``logits_to_keep=1``), which with left padding is every sequence's real last
token (position ids are counted from the first real token, so padding changes nothing).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from finece_guard.training.encoding import Encoded


class ScoreDataset(torch.utils.data.Dataset[Encoded]):
    """Pre-tokenised examples (tokenisation is cheap next to one training step)."""

    def __init__(self, items: Sequence[Encoded]) -> None:
        self.items = list(items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Encoded:
        return self.items[index]


def collate(items: Sequence[Encoded], pad_id: int) -> dict[str, torch.Tensor]:
    """Left-padded batch: column -1 is every sequence's real last token (the score position).

    ``position_ids`` count from each sequence's first real token, so a padded sequence gets the
    same logits as the same sequence alone (as vLLM sees it).
    """
    if not items:
        raise ValueError("cannot collate an empty batch")
    width = max(len(e.input_ids) for e in items)
    input_ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(items), width), dtype=torch.long)
    for row, e in enumerate(items):
        n = len(e.input_ids)
        input_ids[row, width - n :] = torch.tensor(e.input_ids, dtype=torch.long)
        attention_mask[row, width - n :] = 1
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    target = torch.tensor([e.target for e in items], dtype=torch.float32)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "position_ids": position_ids, "target": target}


def score_loss(last_logits: torch.Tensor, target: torch.Tensor, digit_ids: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the soft digit targets against the full-vocabulary log-softmax.

    ``last_logits``: (batch, vocab) at the score position; ``target``: (batch, 10).
    Probability put on non-digit tokens is loss too, so training also moves mass onto digits.
    """
    logp = torch.log_softmax(last_logits.float(), dim=-1)
    digit_logp = logp.index_select(-1, digit_ids.to(logp.device))
    return -(target.to(logp.device) * digit_logp).sum(-1).mean()


def last_logits(model: Callable[..., Any], batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """(batch, vocab) logits after each sequence's last token; only that position is computed."""
    out = model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        position_ids=batch["position_ids"],
        logits_to_keep=1,
    )
    logits: torch.Tensor = out.logits
    return logits[:, -1, :]


def batch_loss(model: Callable[..., Any], batch: dict[str, torch.Tensor], digit_ids: torch.Tensor) -> torch.Tensor:
    """The training loss of a collated batch: the score position only."""
    return score_loss(last_logits(model, batch), batch["target"], digit_ids)
