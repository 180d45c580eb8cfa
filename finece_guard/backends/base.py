"""The scorer interface every backend implements, with its sync wrappers and batching.

A scorer turns a state (question; question + partial answer; question + full answer) into a
:class:`~finece_guard.types.Score`. Backends implement only ``ascore``; batching with bounded
concurrency and the sync wrappers come from :class:`BaseScorer`. :func:`recalibrated` is how a
backend applies an optional recalibrator (e.g. the adapter's ``recalibration.json``) to a score;
:meth:`BaseScorer.with_fusion` adds FineCE+ (an optional fitted fusion model, e.g. the adapter's
``finece_fusion.json``) from the stream's tokens, which only the caller that streams has.
"""

from __future__ import annotations

import asyncio
import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Literal, overload

from finece_guard.backends.fusion import FusionModel
from finece_guard.sync_bridge import run_sync
from finece_guard.types import CheckpointKind, Score, TokenEvent

#: (question, answer or None, kind)
ScoreRequest = tuple[str, str | None, CheckpointKind]

#: Maps a raw confidence in [0, 1] to a recalibrated one, e.g. a fitted
#: :class:`~finece_guard.backends.recalibration.Recalibrator` (which is callable).
ScoreMap = Callable[[float], float]


def recalibrated(score: Score, recalibrator: ScoreMap | None) -> Score:
    """``score`` with ``value`` mapped by ``recalibrator`` and the scorer's own value kept in ``raw_value``.

    No recalibrator returns ``score`` unchanged (``raw_value`` stays None). The mapped value is
    clipped to [0, 1].
    """
    if recalibrator is None:
        return score
    value = min(1.0, max(0.0, float(recalibrator(score.value))))
    return dataclasses.replace(score, value=value, raw_value=score.value)


class BaseScorer(ABC):
    """Async-first FineCE scorer with sync wrappers and bounded batching."""

    max_concurrency: int = 8
    #: FineCE+ model applied by :meth:`with_fusion` (None: scores carry no ``fused`` value)
    fusion: FusionModel | None = None

    def with_fusion(self, score: Score, tokens: Sequence[TokenEvent], kind: CheckpointKind) -> Score:
        """``score`` with ``fused`` set from the answer's ``tokens`` so far (unchanged without a model).

        The fusion model was fit on the adapter's own (not recalibrated) values, so it reads
        ``raw_value`` where a recalibrator was applied. The question-only state is never fused, nor
        is a state none of whose tokens carries a logprob (a model streamed without ``logprobs=True``):
        its features would read the missing probabilities as certainty (logprob 0).
        """
        if self.fusion is None or kind is CheckpointKind.QUESTION:
            return score
        if not any(t.logprob is not None for t in tokens):
            return score
        base = score.raw_value if score.raw_value is not None else score.value
        fused = self.fusion.fuse(
            base, [t.logprob for t in tokens], [t.text for t in tokens], final=kind is CheckpointKind.FINAL
        )
        return dataclasses.replace(score, fused=fused)

    @abstractmethod
    async def ascore(self, question: str, answer: str | None, kind: CheckpointKind) -> Score:
        """Score one state."""

    @overload
    async def ascore_many(
        self, requests: Sequence[ScoreRequest], *, return_exceptions: Literal[False] = ...
    ) -> list[Score]: ...

    @overload
    async def ascore_many(
        self, requests: Sequence[ScoreRequest], *, return_exceptions: bool
    ) -> list[Score | BaseException]: ...

    async def ascore_many(
        self, requests: Sequence[ScoreRequest], *, return_exceptions: bool = False
    ) -> list[Score] | list[Score | BaseException]:
        """Score many states concurrently (at most ``max_concurrency`` in flight), in order.

        A failed state raises unless ``return_exceptions``, where its exception takes its place
        (the return type says which: ``list[Score]`` without it).
        """
        sem = asyncio.Semaphore(self.max_concurrency)

        async def one(req: ScoreRequest) -> Score:
            async with sem:
                return await self.ascore(*req)

        results = await asyncio.gather(*(one(r) for r in requests), return_exceptions=return_exceptions)
        return list(results)

    def score(self, question: str, answer: str | None, kind: CheckpointKind) -> Score:
        """Sync wrapper of :meth:`ascore` (not for use inside an event loop)."""
        return run_sync(self.ascore(question, answer, kind))

    @overload
    def score_many(
        self, requests: Sequence[ScoreRequest], *, return_exceptions: Literal[False] = ...
    ) -> list[Score]: ...

    @overload
    def score_many(
        self, requests: Sequence[ScoreRequest], *, return_exceptions: bool
    ) -> list[Score | BaseException]: ...

    def score_many(
        self, requests: Sequence[ScoreRequest], *, return_exceptions: bool = False
    ) -> list[Score] | list[Score | BaseException]:
        """Sync wrapper of :meth:`ascore_many`."""
        return run_sync(self.ascore_many(requests, return_exceptions=return_exceptions))
