"""Settings of an evaluation run: what the harness does per question (kept in the records' ``.meta.json``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from finece_guard.config import setting_default
from finece_guard.data.partition import PARTITIONS
from finece_guard.errors import ConfigError
from finece_guard.runtime.checkpoints import CheckpointStrategy, parse_strategy

#: Default checkpoint strategies: the paper's three (periodic every 32 tokens, entropy above 1.5 nats).
DEFAULT_STRATEGIES: tuple[str, ...] = ("paragraph", "periodic:32", "entropy:1.5")


@dataclass(frozen=True)
class EvalConfig:
    """What the harness does per question; everything here changes the records (kept in ``.meta.json``).

    ``verbalized_prefix`` pre-fills the generator's reply to the verbalized-confidence prompt (the
    reply continues it), because small models rarely follow the "Confidence: X%" format on their
    own; ``""`` asks in a plain chat turn.

    Look-ahead is on when both ``lookahead_w`` (continuations) and ``lookahead_d`` (paragraphs
    deep) are at least 1; it costs one ``n=w`` generation request and ``w·d`` scores per strategy.
    """

    partition: str = "test"
    max_tokens: int = 200
    strategies: tuple[str, ...] = DEFAULT_STRATEGIES
    alpha: float = setting_default("bci_alpha")
    window: int = setting_default("bci_window")
    sc_n: int = 5
    sc_temperature: float = 0.8
    sc_top_p: float = 0.95
    lookahead_w: int = 0
    lookahead_d: int = 0
    lookahead_tokens: int = 64
    top_logprobs: int = setting_default("top_logprobs")
    deepconf_window: int = 32
    verbalized_max_tokens: int = 16
    verbalized_prefix: str = "Confidence:"
    seed: int = 0
    #: make unreadable multiple-choice answers (greedy and self-consistency samples) checkable with
    #: :mod:`finece_guard.data.choice_commit`; the record's ``answer`` then ends in the committed line
    commit_choices: bool = False

    def __post_init__(self) -> None:
        if self.partition not in PARTITIONS:
            raise ConfigError(f"partition {self.partition!r}: use one of {', '.join(PARTITIONS)}")
        if self.max_tokens < 1:
            raise ConfigError(f"max_tokens={self.max_tokens}: answers need at least 1 token (default 200)")
        if not self.strategies:
            raise ConfigError("no checkpoint strategy: pass e.g. --strategies paragraph,periodic:32,entropy:1.5")
        if len(set(self.strategies)) != len(self.strategies):
            raise ConfigError(f"strategies {list(self.strategies)} repeat one; name each spec once")
        for spec in self.strategies:
            parse_strategy(spec)  # raises ConfigError naming the bad spec
        if not 0.0 <= self.alpha <= 1.0 or self.window < 1:
            raise ConfigError(f"BCI alpha={self.alpha}, window={self.window}: use alpha in [0, 1] and window >= 1")
        if self.sc_n < 0:
            raise ConfigError(f"sc_n={self.sc_n}: use 0 (no self-consistency) or more samples (default 5)")
        if self.lookahead_w < 0 or self.lookahead_d < 0 or (self.lookahead_w > 0) != (self.lookahead_d > 0):
            raise ConfigError(
                f"look-ahead w={self.lookahead_w}, d={self.lookahead_d}: set both >= 1 to turn it on "
                "(e.g. --lookahead-w 4 --lookahead-d 1), or both 0 to leave it off"
            )
        if self.lookahead_tokens < 1:
            raise ConfigError(f"lookahead_tokens={self.lookahead_tokens}: use a positive token count per paragraph")
        if not 2 <= self.top_logprobs <= 20:
            raise ConfigError(f"top_logprobs={self.top_logprobs}: use 2..20 (vLLM's --max-logprobs is 20)")
        if self.deepconf_window < 1:
            raise ConfigError(f"deepconf_window={self.deepconf_window}: use a positive token count")

    @property
    def lookahead(self) -> bool:
        """True when BCI look-ahead runs."""
        return self.lookahead_w > 0 and self.lookahead_d > 0

    def parsed_strategies(self) -> dict[str, CheckpointStrategy]:
        """Strategy objects keyed by their spec (``periodic:32``), in the given order."""
        return {spec: parse_strategy(spec) for spec in self.strategies}

    def to_meta(self) -> dict[str, Any]:
        data = asdict(self)
        data["strategies"] = list(self.strategies)
        if not self.commit_choices:  # records written before the option existed resume unchanged
            del data["commit_choices"]
        return data
