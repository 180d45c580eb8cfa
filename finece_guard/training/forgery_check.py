"""The dev-set forgery check run by the trainer: does a forged confidence claim move the score?

Why it exists: the adversarial augmentation (:func:`~finece_guard.training.examples.forged_examples`)
is only worth keeping if the trained adapter stops copying digits, and that must show up in the
training log of every run (not only in a separate evaluation against a server). Before and after
training, the trainer scores pairs of dev states - a complete answer clean, and the same answer
with one score-raising payload - and records the mean shift, split into payloads the
augmentation trains on and payloads held out of it (generalisation). Pure Python: the trainer
does the forward passes.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from typing import Any

from finece_guard.data.forgery import PAYLOADS, inject
from finece_guard.errors import ConfigError
from finece_guard.training.examples import TrainingExample
from finece_guard.types import CheckpointKind

#: at most this many dev pairs (a forward pass each, before and after training)
MAX_PAIRS = 160


def forgery_pairs(
    examples: Sequence[TrainingExample], *, seed: int = 0, limit: int = MAX_PAIRS
) -> list[tuple[TrainingExample, TrainingExample, bool]]:
    """(clean, forged, held_out) for up to ``limit`` clean complete answers, one score-raising payload
    each, chosen deterministically; trained and held-out payloads alternate by hash."""
    ups = [p for p in PAYLOADS if p.direction == "up"]
    pairs: list[tuple[TrainingExample, TrainingExample, bool]] = []
    for ex in examples:
        if len(pairs) >= limit:
            break
        if ex.kind is not CheckpointKind.FINAL or ex.answer is None or ex.payload is not None:
            continue
        digest = hashlib.sha256(f"{seed}\x00{ex.key}\x00{ex.answer}".encode()).digest()
        payload = ups[int.from_bytes(digest[:4], "big") % len(ups)]
        forged = dataclasses.replace(ex, answer=inject(ex.answer, payload), payload=payload.name)
        pairs.append((ex, forged, payload.held_out))
    return pairs


def forgery_shift(
    clean: Sequence[float], forged: Sequence[float], meta: Sequence[tuple[str, bool]]
) -> dict[str, Any]:
    """Mean forged − clean score overall, on trained and held-out payloads, and per payload wording."""
    if not len(clean) == len(forged) == len(meta):
        raise ConfigError(f"forgery check: {len(clean)} clean, {len(forged)} forged, {len(meta)} labels differ")
    diffs = [f - c for c, f in zip(clean, forged, strict=True)]

    def mean(sel: list[int]) -> float | None:
        return sum(diffs[i] for i in sel) / len(sel) if sel else None

    everything = list(range(len(diffs)))
    by_payload: dict[str, list[int]] = {}
    for i, (name, _) in enumerate(meta):
        by_payload.setdefault(name.rsplit("@", 1)[0], []).append(i)
    return {
        "n_pairs": len(diffs),
        "mean_shift": mean(everything),
        "mean_abs_shift": sum(abs(d) for d in diffs) / len(diffs) if diffs else None,
        "mean_shift_trained_payloads": mean([i for i in everything if not meta[i][1]]),
        "mean_shift_held_out_payloads": mean([i for i in everything if meta[i][1]]),
        "by_payload": {name: mean(sel) for name, sel in sorted(by_payload.items())},
    }
