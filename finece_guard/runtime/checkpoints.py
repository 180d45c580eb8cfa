"""Where to score an answer while it streams (paper III-C): pure, cheap, stateless decisions.

A strategy looks at the tokens so far and at how many tokens have passed since the last
checkpoint, and says whether the current token closes a checkpoint (and why). Strategies keep
no per-run state, so one instance can serve any number of concurrent runs. The question-only
state and the final answer are always checkpoints; the monitor adds them, not the strategy.

Entropy note: vLLM returns at most ``--max-logprobs`` alternatives per position, so the entropy
here is computed over the renormalised top-k only. It is a **truncated estimate** that is biased
low when much probability sits outside the top-k; ``residual_bucket=True`` adds the missing mass
as one extra outcome, which gives a (still truncated) less biased value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from finece_guard.errors import ConfigError
from finece_guard.types import TokenEvent

_BLANK_LINE_END = re.compile(r"\n[ \t]*\n[ \t]*$")


@runtime_checkable
class CheckpointStrategy(Protocol):
    """Decides whether the newest token closes a checkpoint."""

    @property
    def name(self) -> str:
        """Short name recorded in traces (``paragraph``, ``periodic``, ``entropy``)."""
        ...

    def reason(self, tokens: Sequence[TokenEvent], since_last: int) -> str | None:
        """A short reason if ``tokens[-1]`` closes a checkpoint, else None.

        ``since_last`` counts tokens since the previous checkpoint, the newest included.
        """
        ...


@dataclass(frozen=True)
class ParagraphEnd:
    """Checkpoint at the end of a paragraph (the paper's best accuracy/cost trade-off).

    ``blank_line=False`` (default) treats every line break as a paragraph end, which suits the
    short answers small models give; ``blank_line=True`` waits for an empty line. Breaks closing
    fewer than ``min_tokens`` tokens are ignored, so lists of one-word lines do not flood the
    scorer.
    """

    min_tokens: int = 4
    blank_line: bool = False
    name: str = "paragraph"

    def __post_init__(self) -> None:
        if self.min_tokens < 1:
            raise ConfigError(f"ParagraphEnd(min_tokens={self.min_tokens}): use 1 or more")

    def reason(self, tokens: Sequence[TokenEvent], since_last: int) -> str | None:
        if not tokens or "\n" not in tokens[-1].text:
            return None
        if self.blank_line:
            # the break that just arrived must close an empty line (``\n`` + blanks + ``\n``)
            tail = "".join(t.text for t in tokens[-3:])
            if not _BLANK_LINE_END.search(tail):
                return None
        content = sum(1 for t in tokens[max(0, len(tokens) - since_last) :] if t.text.strip())
        if content < self.min_tokens:
            return None
        return "paragraph end"


@dataclass(frozen=True)
class Periodic:
    """Checkpoint every ``every`` tokens (paper: e.g. every 50)."""

    every: int = 32
    name: str = "periodic"

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ConfigError(f"Periodic(every={self.every}): use a positive token count")

    def reason(self, tokens: Sequence[TokenEvent], since_last: int) -> str | None:
        return f"every {self.every} tokens" if since_last >= self.every else None


def topk_entropy(top_logprobs: Sequence[tuple[str, float]], *, residual_bucket: bool = False) -> float:
    """Shannon entropy (nats) over the top-k alternatives, renormalised (a truncated estimate)."""
    probs = [math.exp(lp) for _, lp in top_logprobs if lp is not None and not math.isnan(lp)]
    total = sum(probs)
    if total <= 0.0:
        return 0.0
    if residual_bucket and total < 1.0:
        probs = [*probs, 1.0 - total]
        total = 1.0
    return -sum((p / total) * math.log(p / total) for p in probs if p > 0.0)


@dataclass(frozen=True)
class Entropy:
    """Checkpoint when the generator's next-token entropy exceeds ``threshold`` nats.

    Needs the stream's ``top_logprobs`` (request ``logprobs=True, top_logprobs=k``). At least
    ``min_gap`` tokens separate two entropy checkpoints.
    """

    threshold: float = 1.5
    min_gap: int = 8
    residual_bucket: bool = False
    name: str = "entropy"

    def __post_init__(self) -> None:
        if not self.threshold > 0:  # also rejects NaN
            raise ConfigError(f"Entropy(threshold={self.threshold}): use a positive value in nats")
        if self.min_gap < 1:
            raise ConfigError(f"Entropy(min_gap={self.min_gap}): use 1 or more")

    def reason(self, tokens: Sequence[TokenEvent], since_last: int) -> str | None:
        if not tokens or since_last < self.min_gap:
            return None
        top = tokens[-1].top_logprobs
        if not top:
            return None
        h = topk_entropy(top, residual_bucket=self.residual_bucket)
        return f"entropy {h:.2f} > {self.threshold}" if h > self.threshold else None


def parse_strategy(spec: str) -> CheckpointStrategy:
    """Build a strategy from a CLI spec: ``paragraph``, ``periodic:N``, ``entropy:T``."""
    name, _, arg = spec.partition(":")
    try:
        if name == "paragraph":
            return ParagraphEnd(min_tokens=int(arg)) if arg else ParagraphEnd()
        if name == "periodic":
            return Periodic(every=int(arg)) if arg else Periodic()
        if name == "entropy":
            return Entropy(threshold=float(arg)) if arg else Entropy()
    except ValueError as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"checkpoint spec {spec!r}: {arg!r} is not a number") from exc
    raise ConfigError(
        f"unknown checkpoint strategy {spec!r}; use 'paragraph', 'periodic:N' or 'entropy:T'"
    )
