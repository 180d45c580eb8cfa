"""A second stage that makes a multiple-choice answer checkable: commit to one option letter.

Why this exists (issue 11, lever 6): the default generator (SmolLM2-135M) leaves 13-22% of its
multiple-choice answers without an option :func:`~finece_guard.data.checkers.extract_choice` can
read. Such an answer is labelled wrong whatever the model meant, so its Monte-Carlo labels and its
evaluation label say "no readable letter" rather than "wrong option", and a confidence score of it
measures formatting. When an answer cannot be read, this stage continues the very same
conversation with :data:`COMMIT_PREFIX` and lets the server pick one letter under a
``structured_outputs`` choice constraint (one short request, greedy); the answer becomes the free
text plus that line. A readable answer, and any question that is not multiple choice, is left as
it was (no request).

Measured on 120 dev questions (sciq_mc, arc_easy, csqa; benchmarks/results/choice_prompt_commit-dev-2026-12-06.md):
unreadable 13.3% -> 0.0%, accuracy 0.217 -> 0.267.

:class:`ChoiceCommitter` is what a backend implements
(:meth:`~finece_guard.backends.openai_generator.OpenAICompatGenerator.commit_choice`);
:func:`commit_answer` applies the stage to one answer, :class:`CommittingSampler` to every sample a
Monte-Carlo sampler draws (data construction and self-consistency).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from finece_guard.data.checkers import extract_choice
from finece_guard.data.records import LETTERS, AnswerKind, QARecord

if TYPE_CHECKING:
    from finece_guard.data.construction import MonteCarloSampler

#: what the second stage appends to an unreadable answer before the constrained letter
COMMIT_PREFIX = "\nAnswer: "


class ChoiceCommitter(Protocol):
    """Continues ``answer`` (already ending in :data:`COMMIT_PREFIX`) with exactly one of ``letters``."""

    async def commit_choice(self, question: str, answer: str, letters: Sequence[str]) -> str: ...


def needs_commit(record: QARecord, answer: str) -> bool:
    """True for a multiple-choice ``answer`` in which no option can be read."""
    return record.kind is AnswerKind.CHOICE and extract_choice(answer, record.choices) is None


async def _committed(record: QARecord, question: str, text: str, committer: ChoiceCommitter) -> str:
    """``text`` + :data:`COMMIT_PREFIX` + the letter the committer picks (``text`` already stripped)."""
    prefix = text + COMMIT_PREFIX
    return prefix + await committer.commit_choice(question, prefix, LETTERS[: len(record.choices)])


async def commit_answer(record: QARecord, question: str, answer: str, committer: ChoiceCommitter) -> str:
    """``answer`` itself when it is checkable, else ``answer`` + :data:`COMMIT_PREFIX` + the committed letter.

    ``question`` is the prompt exactly as the generator saw it (passage included where shown).
    """
    if not needs_commit(record, answer):
        return answer
    return await _committed(record, question, answer.rstrip(), committer)


class CommittingSampler:
    """A Monte-Carlo sampler whose samples of ``record`` each pass through :func:`commit_answer`.

    ``sample_continuations`` returns continuations of ``answer_prefix`` (not repeating it), so a
    committed continuation is the text that makes ``answer_prefix + continuation`` the committed
    answer; the prefix itself is never rewritten.
    """

    def __init__(self, sampler: MonteCarloSampler, committer: ChoiceCommitter, record: QARecord) -> None:
        self.sampler = sampler
        self.committer = committer
        self.record = record

    async def sample_continuations(
        self,
        question: str,
        answer_prefix: str,
        *,
        n: int,
        max_tokens: int,
        temperature: float = 0.8,
        top_p: float = 0.95,
        seed: int | None = None,
    ) -> list[str]:
        texts = await self.sampler.sample_continuations(
            question, answer_prefix, n=n, max_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed
        )

        async def one(text: str) -> str:
            if not needs_commit(self.record, answer_prefix + text):
                return text
            kept = text.rstrip()
            full = await _committed(self.record, question, answer_prefix + kept, self.committer)
            return full[len(answer_prefix) :]

        return list(await asyncio.gather(*(one(t) for t in texts)))
