"""Fakes for tests, shipped with the library (as langchain-core ships its fake chat models).

:class:`KeywordScorer` is a deterministic :class:`~finece_guard.backends.base.BaseScorer` for
unit tests of code that *uses* a scorer (policies, the guard, the callback handler): it never
stands in for the real FineCE scorer in a test that claims to test scoring.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from finece_guard.backends.base import BaseScorer
from finece_guard.errors import ScoreReadoutError
from finece_guard.types import CheckpointKind, Score


class KeywordScorer(BaseScorer):
    """Scores by a rule on the text: ``rule(question, answer, kind) -> value`` (or raise).

    ``delay_s`` simulates scorer latency; ``calls`` records every request.
    """

    def __init__(
        self, rule: Callable[[str, str | None, CheckpointKind], float], *, delay_s: float = 0.0
    ) -> None:
        self.rule = rule
        self.delay_s = delay_s
        self.calls: list[tuple[str, str | None, CheckpointKind]] = []

    async def ascore(self, question: str, answer: str | None, kind: CheckpointKind) -> Score:
        self.calls.append((question, answer, kind))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        value = self.rule(question, answer, kind)
        if value < 0:
            raise ScoreReadoutError("KeywordScorer rule returned no score")
        return Score(value=value, spread=0.0, mass=1.0)
