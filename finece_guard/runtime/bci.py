"""Backward Confidence Integration (paper eq. 5): later confidence refines earlier confidence.

    c'_N = c_N
    c'_j = α·c_j + (1 − α)·mean(c'_{j+1}, …, c'_{min(j+w, N)})      for j < N

Two uses:

* :func:`refine` — *retrospective*: once an answer is finished, refine every checkpoint's
  score with the later ones. Acceptance, filtering and evaluation use these values.
* :func:`look_ahead` — at one checkpoint that matters, sample ``width`` short continuations of
  ``depth`` paragraphs from the generator (``n=width`` on the cached prefix), score each step of
  each path, refine each path with eq. 5, and integrate the paths' first refined values back:
  ``c'_j = α·c_j + (1 − α)·mean_i c'_{i,1}``.

What each use can change: eq. 5 leaves the last state unchanged (c'_N = c_N), so retrospective
BCI never changes a verdict on a *finished* answer's final score; it refines the earlier
checkpoints (what evaluation, early-stage analysis and ``GuardResult.refined_trace`` show). A
decision taken *while the answer streams* can only be refined by looking ahead: a policy asks for
it with ``confirm=LookAhead(width, depth)`` and then decides on the integrated value
(:class:`LookAhead`, carried out by the callback handler, its cost kept in the trace).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from finece_guard.config import setting_default
from finece_guard.errors import ConfigError
from finece_guard.types import CheckpointKind, Score

_ALPHA = setting_default("bci_alpha")
_WINDOW = setting_default("bci_window")


def _check(alpha: float, window: int) -> None:
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"BCI alpha={alpha!r} must be in [0, 1] (1 keeps raw scores)")
    if window < 1:
        raise ConfigError(f"BCI window={window!r} must be at least 1")


def refine(scores: Sequence[float | None], *, alpha: float = _ALPHA, window: int = _WINDOW) -> list[float | None]:
    """Retrospective BCI over a finished trace; ``None`` (unscored) entries are skipped and kept.

    A window larger than what remains averages over the remaining checkpoints only.
    """
    _check(alpha, window)
    idx = [i for i, s in enumerate(scores) if s is not None]
    vals = [float(scores[i]) for i in idx]  # type: ignore[arg-type]
    refined = list(vals)
    for j in range(len(vals) - 2, -1, -1):
        ahead = refined[j + 1 : j + 1 + window]
        refined[j] = alpha * vals[j] + (1.0 - alpha) * (sum(ahead) / len(ahead))
    out: list[float | None] = [None] * len(scores)
    for i, v in zip(idx, refined, strict=True):
        out[i] = v
    return out


def integrate_paths(current: float, paths: Sequence[Sequence[float]], *, alpha: float = _ALPHA) -> float:
    """Look-ahead eq. 5: fold scored future paths (each a list of step scores) into ``current``.

    Each path is first refined with retrospective BCI (window = its depth); the mean of the
    paths' first refined values is the future term. No paths leaves ``current`` unchanged.
    """
    _check(alpha, 1)
    firsts: list[float] = []
    for path in paths:
        if not path:
            continue
        r = refine(list(path), alpha=alpha, window=max(1, len(path)))
        firsts.append(float(r[0]))  # type: ignore[arg-type]
    if not firsts:
        return current
    return alpha * current + (1.0 - alpha) * (sum(firsts) / len(firsts))


class ContinuationSampler(Protocol):
    """Samples ``n`` continuations of a partial answer (e.g. vLLM ``n=w`` on a cached prefix)."""

    async def sample_continuations(
        self, question: str, answer_prefix: str, *, n: int, max_tokens: int
    ) -> list[str]: ...


class StateScorer(Protocol):
    """Scores one state (question, answer so far, kind)."""

    async def ascore(self, question: str, answer: str | None, kind: CheckpointKind) -> Score: ...


@dataclass(frozen=True)
class LookAhead:
    """Ask the runtime to confirm an in-stream decision by looking ahead before acting.

    At the checkpoint where a policy is about to act, ``width`` continuations of ``depth``
    paragraphs (at most ``max_tokens_per_step`` tokens each) are sampled from the generator in
    one request (``n=width``), scored, and integrated with eq. 5 (``alpha``; ``None`` uses the
    guard's BCI alpha). The policy then decides on the integrated value.
    """

    width: int = 4
    depth: int = 1
    alpha: float | None = None
    max_tokens_per_step: int = 48

    def __post_init__(self) -> None:
        sizes = (("width", self.width), ("depth", self.depth), ("max_tokens_per_step", self.max_tokens_per_step))
        for name, value in sizes:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(
                    f"LookAhead {name}={value!r} must be an integer >= 1 (e.g. LookAhead(width=4, depth=1))"
                )
        if self.alpha is not None:
            _check(self.alpha, 1)


@dataclass(frozen=True)
class LookAheadResult:
    """The integrated value and what it was made of and cost (kept for the trace)."""

    value: float
    raw: float
    paths: tuple[tuple[float, ...], ...]
    continuations: tuple[str, ...]
    tokens: int = 0
    requests: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": self.value, "raw": self.raw, "paths": [list(p) for p in self.paths],
            "continuations": list(self.continuations), "tokens": self.tokens, "requests": self.requests,
            "seconds": self.seconds,
        }  # fmt: skip


def split_paragraphs(text: str, depth: int) -> list[str]:
    """Cumulative prefixes of ``text`` ending at each of its first ``depth`` paragraph ends."""
    prefixes: list[str] = []
    pos = 0
    while len(prefixes) < depth:
        nl = text.find("\n", pos)
        if nl == -1:
            if text[pos:].strip():
                prefixes.append(text)
            break
        if text[pos:nl].strip():
            prefixes.append(text[: nl + 1])
        pos = nl + 1
    return prefixes


async def look_ahead(
    question: str,
    answer_prefix: str,
    raw: float,
    *,
    sampler: ContinuationSampler,
    scorer: StateScorer,
    width: int = 4,
    depth: int = 1,
    alpha: float = _ALPHA,
    max_tokens_per_step: int = 64,
) -> LookAheadResult:
    """Sample ``width`` continuations of ``depth`` paragraphs, score them and integrate (eq. 5)."""
    _check(alpha, 1)
    if width < 1:
        raise ConfigError(f"look-ahead width={width!r} must be at least 1 continuation")
    if depth < 1:
        raise ConfigError(f"look-ahead depth={depth!r} must be at least 1 paragraph")
    t0 = time.perf_counter()
    counted = getattr(sampler, "sample_continuations_with_usage", None)
    tokens = 0
    if callable(counted):
        conts, tokens = await counted(question, answer_prefix, n=width, max_tokens=max_tokens_per_step * depth)
    else:
        conts = await sampler.sample_continuations(
            question, answer_prefix, n=width, max_tokens=max_tokens_per_step * depth
        )
    step_texts = [split_paragraphs(c, depth) for c in conts]
    jobs = [
        scorer.ascore(question, answer_prefix + step, CheckpointKind.PARTIAL) for steps in step_texts for step in steps
    ]
    scores = await asyncio.gather(*jobs)
    it = iter(scores)
    paths = tuple(tuple(next(it).value for _ in steps) for steps in step_texts)
    value = integrate_paths(raw, paths, alpha=alpha)
    return LookAheadResult(
        value=value, raw=raw, paths=paths, continuations=tuple(conts), tokens=int(tokens),
        requests=1 + len(jobs), seconds=time.perf_counter() - t0,
    )  # fmt: skip
