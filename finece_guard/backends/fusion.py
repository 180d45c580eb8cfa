"""FineCE+: a small calibrated model that fuses the adapter's score with free signals of the stream.

Why it exists: the FineCE adapter reads the answer's *text*; the generator's own token
probabilities, which every streamed token already carries, are a second, free and partly
independent signal (the "single-pass baselines"). A logistic regression over the adapter's score
and a few stream statistics, fit on a dev partition, combines both. It is always reported beside
raw FineCE, never in its place: a :class:`~finece_guard.types.Score` keeps ``value`` (the
adapter's, possibly recalibrated) and gets the fused probability in ``fused``.

The features of a state are computed from what the stream has produced up to that state, the same
way offline (eval records: chosen-token logprobs and token texts) and online (the monitor's token
events), so a model fit on records applies unchanged at every checkpoint of a live run:

* ``logit_score``: logit of the adapter's score (clipped to [0.001, 0.999]);
* ``mean_logprob`` / ``min_logprob`` / ``tail_logprob``: mean, minimum and mean of the last 16
  chosen-token logprobs so far (0 when none are known);
* ``log_tokens``: log(1 + tokens so far); ``repetition``: share of token 3-grams seen before in
  the answer; ``final``: 1 for the complete answer, 0 for a partial one.

The question-only state has no stream yet and is never fused. The fitted model is a JSON file
(:data:`FUSION_FILE`) kept in the adapter folder beside ``finece_manifest.json``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from finece_guard.errors import ConfigError

#: File name of a fitted fusion model inside an adapter folder.
FUSION_FILE = "finece_fusion.json"
FEATURES = ("logit_score", "mean_logprob", "min_logprob", "tail_logprob", "log_tokens", "repetition", "final")
_TAIL = 16
_VERSION = 1


def _logit(p: float) -> float:
    q = min(0.999, max(0.001, p))
    return math.log(q / (1.0 - q))


def _repetition(tokens: Sequence[str], n: int = 3) -> float:
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    if not grams:
        return 0.0
    seen: set[tuple[str, ...]] = set()
    repeated = 0
    for g in grams:
        repeated += g in seen
        seen.add(g)
    return repeated / len(grams)


def state_features(
    score: float, logprobs: Sequence[float | None], tokens: Sequence[str], *, final: bool
) -> list[float]:
    """The feature vector (in :data:`FEATURES` order) of one partial or complete answer state."""
    known = [lp for lp in logprobs if lp is not None and math.isfinite(lp)]
    tail = known[-_TAIL:]
    return [
        _logit(score),
        sum(known) / len(known) if known else 0.0,
        min(known) if known else 0.0,
        sum(tail) / len(tail) if tail else 0.0,
        math.log1p(len(tokens)),
        _repetition(tokens),
        1.0 if final else 0.0,
    ]


@dataclass(frozen=True)
class StandardisedLogistic:
    """Standardise-then-logistic coefficients over a feature vector of any width: the arithmetic of a
    :class:`FusionModel` (which also binds it to :data:`FEATURES`), usable on its own to try other features."""

    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float

    def predict(self, features: Sequence[float]) -> float:
        """Fused probability that the answer ends up correct."""
        z = self.intercept + sum(
            c * (x - m) / s for c, x, m, s in zip(self.coef, features, self.mean, self.scale, strict=True)
        )
        return 1.0 / (1.0 + math.exp(-max(-40.0, min(40.0, z))))


def fit_standardised_logistic(
    rows: Sequence[Sequence[float]], labels: Sequence[bool], *, weights: Sequence[float] | None = None, c: float = 1.0
) -> StandardisedLogistic:
    """sklearn logistic regression on standardised ``rows`` (a constant column keeps scale 1)."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    x = np.asarray(rows, dtype=float)
    y = np.asarray(labels, dtype=int)
    if x.ndim != 2 or len(y) != len(x):
        raise ConfigError(f"a logistic fit needs equally long feature rows and one label each (got shape {x.shape})")
    if len(set(y.tolist())) < 2:
        raise ConfigError("the fit needs both correct and wrong answers among the labels (e.g. a larger dev set)")
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    model = LogisticRegression(C=c, max_iter=2000)
    model.fit((x - mean) / scale, y, sample_weight=None if weights is None else np.asarray(weights, dtype=float))
    return StandardisedLogistic(
        mean=tuple(float(v) for v in mean), scale=tuple(float(v) for v in scale),
        coef=tuple(float(v) for v in model.coef_[0]), intercept=float(model.intercept_[0]),
    )  # fmt: skip


@dataclass(frozen=True)
class FusionModel(StandardisedLogistic):
    """A fitted standardise-then-logistic model over :data:`FEATURES` (see the module docstring)."""

    features: tuple[str, ...] = FEATURES
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.features)
        if self.features != FEATURES or not (len(self.mean) == len(self.scale) == len(self.coef) == n):
            raise ConfigError(
                f"fusion model has features {list(self.features)} with {len(self.coef)} coefficients; this version "
                f"reads {list(FEATURES)}: refit it with `fit_fusion` (benchmarks/fusion_fit.py)"
            )

    def fuse(self, score: float, logprobs: Sequence[float | None], tokens: Sequence[str], *, final: bool) -> float:
        """:meth:`predict` on :func:`state_features` of one state."""
        return self.predict(state_features(score, logprobs, tokens, final=final))

    def save(self, path: Path) -> Path:
        """Write the model as JSON (a folder gets :data:`FUSION_FILE` inside it); returns the file."""
        target = path / FUSION_FILE if path.is_dir() else path
        target.write_text(json.dumps({"version": _VERSION, **asdict(self)}, indent=2, sort_keys=True) + "\n")
        return target

    @classmethod
    def load(cls, path: Path) -> FusionModel:
        """Read a model written by :meth:`save` (a folder: its :data:`FUSION_FILE`)."""
        source = path / FUSION_FILE if path.is_dir() else path
        try:
            data = json.loads(source.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read the fusion model {source}: {exc}; refit it with fit_fusion") from exc
        if not isinstance(data, dict) or data.get("version") != _VERSION:
            raise ConfigError(f"{source} is not a version-{_VERSION} fusion model; refit it with fit_fusion")
        try:
            return cls(
                mean=tuple(data["mean"]), scale=tuple(data["scale"]), coef=tuple(data["coef"]),
                intercept=float(data["intercept"]), features=tuple(data["features"]), meta=dict(data.get("meta", {})),
            )  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{source}: malformed fusion model ({exc}); refit it with fit_fusion") from exc


def fit_fusion(
    rows: Sequence[Sequence[float]],
    labels: Sequence[bool],
    *,
    weights: Sequence[float] | None = None,
    c: float = 1.0,
    meta: dict[str, Any] | None = None,
) -> FusionModel:
    """Fit a :class:`FusionModel` (:func:`fit_standardised_logistic` on rows of :data:`FEATURES`)."""
    if len(labels) != len(rows) or any(len(r) != len(FEATURES) for r in rows):
        raise ConfigError(
            f"fit_fusion needs rows of {len(FEATURES)} features ({', '.join(FEATURES)}) and one label each"
        )
    fitted = fit_standardised_logistic(rows, labels, weights=weights, c=c)
    return FusionModel(
        mean=fitted.mean, scale=fitted.scale, coef=fitted.coef, intercept=fitted.intercept,
        meta={"n": len(labels), "positives": int(sum(bool(v) for v in labels)), "c": c, **(meta or {})},
    )  # fmt: skip


def fusion_for_adapter(adapter_dir: Path) -> FusionModel | None:
    """The adapter folder's fitted fusion model, or None when it has none."""
    path = Path(adapter_dir) / FUSION_FILE
    return FusionModel.load(path) if path.is_file() else None
