"""Dev-set evaluation during training: the served readout on each dev state, and its metrics."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from finece_guard.errors import MetricError
from finece_guard.metrics import auroc, brier, ece
from finece_guard.training.encoding import Encoded
from finece_guard.training.examples import N_LEVELS
from finece_guard.training.loss import collate, last_logits
from finece_guard.types import CheckpointKind


@dataclass(frozen=True)
class Prediction:
    """What the scorer reads out for one state: the expected value over the digits and the mass on them."""

    value: float
    digit_mass: float
    loss: float


@torch.inference_mode()
def predict(
    model: Callable[..., Any], items: Sequence[Encoded], digit_ids: list[int], *, pad_id: int, batch_size: int,
    device: str,
) -> list[Prediction]:  # fmt: skip
    """Readout per example: digits' probabilities renormalised, expected value (as the served readout)."""
    ids = torch.tensor(digit_ids, dtype=torch.long)
    levels = torch.arange(N_LEVELS, dtype=torch.float32) / (N_LEVELS - 1)
    out: list[Prediction] = []
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        batch = {k: v.to(device) for k, v in collate(chunk, pad_id).items()}
        logits = last_logits(model, batch).float().cpu()
        logp = torch.log_softmax(logits, dim=-1).index_select(-1, ids)
        probs = logp.exp()
        mass = probs.sum(-1)
        values = (probs / mass.unsqueeze(-1) * levels).sum(-1)
        losses = -(batch["target"].cpu() * logp).sum(-1)
        out += [
            Prediction(float(v), float(m), float(lo))
            for v, m, lo in zip(values.tolist(), mass.tolist(), losses.tolist(), strict=True)
        ]
    return out


def _final_metrics(preds: Sequence[float], labels: Sequence[float]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    notes: dict[str, str] = {}
    binary = [round(y) for y in labels]
    for name, fn in (("ece", ece), ("auroc", auroc), ("brier", brier)):
        try:
            result[name] = fn(list(preds), binary)
        except MetricError as exc:
            result[name] = None
            notes[name] = str(exc)
    if notes:
        result["notes"] = notes
    return result


def dev_metrics(items: Sequence[Encoded], predictions: Sequence[Prediction]) -> dict[str, Any]:
    """Brier against the soft label per kind, and ECE / AUROC / Brier on final (0/1) states."""
    if not items:
        return {"n_states": 0, "note": "no dev questions (raise --dev-fraction or pass --dev-data)"}

    def summary(sel: list[int]) -> dict[str, Any]:
        preds = [predictions[i].value for i in sel]
        labels = [items[i].label for i in sel]
        return {
            "n_states": len(sel),
            "mean_prediction": sum(preds) / len(sel),
            "mean_label": sum(labels) / len(sel),
            "brier_soft": sum((p - y) ** 2 for p, y in zip(preds, labels, strict=True)) / len(sel),
            "loss": sum(predictions[i].loss for i in sel) / len(sel),
            "digit_mass": sum(predictions[i].digit_mass for i in sel) / len(sel),
        }

    result = summary(list(range(len(items))))
    by_kind: dict[str, Any] = {}
    for kind in CheckpointKind:
        sel = [i for i, e in enumerate(items) if e.kind is kind]
        if not sel:
            continue
        by_kind[kind.value] = summary(sel)
        if kind is CheckpointKind.FINAL:
            by_kind[kind.value].update(
                _final_metrics([predictions[i].value for i in sel], [items[i].label for i in sel])
            )
    result["by_kind"] = by_kind
    return result
