"""Baseline confidence estimators that FineCE is compared against, on the same generated answers.

Why this module exists: a FineCE number is only meaningful next to what cheaper signals give on
the *same* answers. Every function here is pure (no I/O, no model calls) and returns a confidence
in [0, 1] so the harness can feed all methods through the same metrics
(:mod:`finece_guard.metrics`). Where the natural quantity is not a probability, a fixed monotone
map sends it to [0, 1]; such maps preserve ranking (AUROC) but are **not calibrated**, so compare
their ECE only after recalibration (:mod:`finece_guard.backends.recalibration`).

Logprob-based baselines read :class:`~finece_guard.types.TokenEvent` streams. The server returns
at most ``k`` (vLLM ``--max-logprobs``, typically 20) alternatives per position, so entropies and
DeepConf token confidences are **truncated estimates** over the top-k, not over the vocabulary.

Prompted baselines (P(True), verbalized confidence) need one more call to the generator; this
module builds the messages and reads the result, the harness does the HTTP call.

Self-consistency compares final answers already normalised by the task's checker.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np
from numpy.typing import NDArray
from scipy.special import logsumexp

from finece_guard.errors import ConfigError, MetricError, ScoreReadoutError
from finece_guard.prompts import sanitize
from finece_guard.runtime.checkpoints import topk_entropy
from finece_guard.types import TokenEvent

#: DeepConf's default group (sliding window) size in tokens (Fu et al. 2025, reference code).
DEEPCONF_WINDOW = 2048

# --------------------------------------------------------------------------- helpers


def _nonempty(tokens: Sequence[TokenEvent], what: str) -> Sequence[TokenEvent]:
    if len(tokens) == 0:
        raise MetricError(f"{what}: no tokens given; the answer is empty")
    return tokens


def _logprobs(tokens: Sequence[TokenEvent], what: str) -> NDArray[np.float64]:
    """Sampled-token logprobs as an array; every token must carry one."""
    _nonempty(tokens, what)
    missing = [i for i, t in enumerate(tokens) if t.logprob is None or math.isnan(t.logprob)]
    if len(missing) == len(tokens):
        raise MetricError(f"{what}: no logprobs on tokens: request logprobs=True from the generator")
    if missing:
        raise MetricError(
            f"{what}: {len(missing)} of {len(tokens)} tokens have no logprob (first at index {missing[0]}); "
            "request logprobs=True for the whole answer"
        )
    return np.array([t.logprob for t in tokens], dtype=np.float64)


def _check_k(k: int | None, minimum: int = 1) -> None:
    if k is not None and k < minimum:
        raise ConfigError(f"k={k}: use at least {minimum} alternatives (or None for all the server sent)")


def _top(token: TokenEvent, k: int | None) -> list[tuple[str, float]]:
    """The ``k`` most likely alternatives at a position (all of them when ``k`` is None)."""
    pairs = [(s, lp) for s, lp in token.top_logprobs if lp is not None and not math.isnan(lp)]
    pairs.sort(key=lambda p: p[1], reverse=True)
    return pairs if k is None else pairs[:k]


def _tops(tokens: Sequence[TokenEvent], k: int | None, what: str, minimum: int = 1) -> list[list[tuple[str, float]]]:
    _nonempty(tokens, what)
    tops = [_top(t, k) for t in tokens]
    if all(not t.top_logprobs for t in tokens):
        raise MetricError(f"{what}: no top_logprobs on tokens: request logprobs=True and top_logprobs=20")
    short = [i for i, top in enumerate(tops) if len(top) < minimum]
    if short:
        raise MetricError(
            f"{what}: {len(short)} of {len(tokens)} tokens have fewer than {minimum} top_logprobs "
            f"(first at index {short[0]}); request top_logprobs>={max(minimum, 2)} for the whole answer"
        )
    return tops


# --------------------------------------------------------------------------- logprob baselines


def first_prob(tokens: Sequence[TokenEvent]) -> float:
    """Paper's First-Prob: probability of the first generated token, ``exp(logprob_0)``.

    Already a probability, so no extra map. Only ``tokens[0]`` needs a logprob.
    """
    _nonempty(tokens, "first_prob")
    lp = tokens[0].logprob
    if lp is None or math.isnan(lp):
        raise MetricError("first_prob: no logprob on the first token: request logprobs=True from the generator")
    return float(min(1.0, math.exp(lp)))


def mean_token_prob(tokens: Sequence[TokenEvent]) -> float:
    """Geometric mean token probability, ``exp(mean_i logprob_i)`` (length-normalised sequence prob)."""
    return float(min(1.0, np.exp(_logprobs(tokens, "mean_token_prob").mean())))


def min_token_prob(tokens: Sequence[TokenEvent]) -> float:
    """Probability of the least likely sampled token, ``exp(min_i logprob_i)``."""
    return float(min(1.0, np.exp(_logprobs(tokens, "min_token_prob").min())))


def mean_entropy_conf(tokens: Sequence[TokenEvent], k: int | None = None) -> float:
    """``exp(-H̄)`` where H̄ is the mean over tokens of the top-k entropy in nats.

    Each position's entropy is over its ``k`` most likely alternatives renormalised to sum to 1
    (:func:`finece_guard.runtime.checkpoints.topk_entropy`; ``k=None`` uses all the server sent), a
    truncated estimate. ``exp(-H)`` is a fixed decreasing map of entropy into (0, 1]: 1 for a
    certain model, ``1/k`` for a uniform top-k. Monotone, not calibrated.
    """
    _check_k(k)
    tops = _tops(tokens, k, "mean_entropy_conf")
    mean_h = float(np.mean([topk_entropy(top) for top in tops]))
    return float(math.exp(-mean_h))


def token_confidences(tokens: Sequence[TokenEvent], k: int | None = None) -> NDArray[np.float64]:
    """DeepConf token confidence per position: ``C_i = -mean_j log P_i(j)`` over the top-k alternatives.

    High when the distribution is peaked (the runner-up alternatives are unlikely). Needs at
    least two alternatives per position: with one, ``C_i = -log p_top`` would rank the other way.
    """
    _check_k(k, minimum=2)
    tops = _tops(tokens, k, "token_confidences", minimum=2)
    return np.array([-np.mean([lp for _, lp in top]) for top in tops], dtype=np.float64)


def lowest_group_confidence_raw(
    tokens: Sequence[TokenEvent], window: int = DEEPCONF_WINDOW, k: int | None = None
) -> float:
    """DeepConf lowest group confidence, unmapped (nats, >= 0): min over sliding windows of mean ``C_i``.

    Groups are the ``len(tokens) - window + 1`` runs of ``window`` consecutive tokens; an answer
    shorter than ``window`` is one group (the whole answer), as in the DeepConf reference code.
    """
    if window < 1:
        raise ConfigError(f"window={window}: use a positive number of tokens (DeepConf uses {DEEPCONF_WINDOW})")
    c = token_confidences(tokens, k)
    if c.size <= window:
        return float(c.mean())
    sums = np.convolve(c, np.ones(window), mode="valid")  # sum of each window of `window` tokens
    return float(sums.min() / window)


def lowest_group_conf(tokens: Sequence[TokenEvent], window: int = DEEPCONF_WINDOW, k: int | None = None) -> float:
    """DeepConf-style (Fu et al. 2025) lowest group confidence mapped to [0, 1) by ``1 - exp(-C)``.

    ``C`` is :func:`lowest_group_confidence_raw`. The map is monotone increasing but not calibrated,
    and it saturates: values of ``C`` above about 36 nats all map to 1.0 in float64, so for AUROC on
    very peaked distributions prefer the raw value. ``window`` defaults to DeepConf's 2048 tokens,
    which makes short answers one group (the trace average); pass a smaller window (e.g. 32) to
    localise the weakest stretch of a short answer.
    """
    c = lowest_group_confidence_raw(tokens, window=window, k=k)
    return float(-math.expm1(-c))


# --------------------------------------------------------------------------- P(True)

PTRUE_INSTRUCTION = "You will be given a question and a proposed answer to it, and asked whether it is correct."

#: Text the assistant turn starts with; the next token is " True" or " False".
PTRUE_ASSISTANT_PREFIX = "The proposed answer is"

_TRUE_WORDS = frozenset({"true"})
_FALSE_WORDS = frozenset({"false"})
# leading-space markers of byte-level BPE (Ġ) and sentencepiece (▁) in raw token strings
_SPACE_MARKERS = " \t\n\r\u0120\u2581"


def ptrue_messages(question: str, answer: str) -> list[dict[str, str]]:
    """Chat messages for P(True) (Kadavath et al. 2022); the assistant turn is to be continued.

    Send with ``continue_final_message=True, add_generation_prompt=False, max_tokens=1,
    logprobs=True, top_logprobs=20, temperature=0`` and pass the position's ``top_logprobs``
    to :func:`read_ptrue`. Question and answer are escaped like the scorer prompt, so an answer
    cannot close its block or write into the assistant turn.
    """
    if not question.strip():
        raise ConfigError("ptrue_messages: question must be a non-empty string")
    content = "\n".join(
        [
            PTRUE_INSTRUCTION,
            "",
            f"<question>\n{sanitize(question)}\n</question>",
            f"<proposed_answer>\n{sanitize(answer)}\n</proposed_answer>",
            "",
            "Is the proposed answer correct? Answer True or False.",
        ]
    )
    return [
        {"role": "user", "content": content},
        {"role": "assistant", "content": PTRUE_ASSISTANT_PREFIX},
    ]


def _word(token: str) -> str:
    return token.strip().lstrip(_SPACE_MARKERS).strip().lower()


def read_ptrue(top_logprobs: Iterable[tuple[str, float]]) -> float:
    """P(True) renormalised over True-like and False-like tokens among ``(token, logprob)`` pairs.

    ``" True"``, ``"True"``, ``"true"`` (and ``"ĠTrue"``/``"▁True"`` raw tokens) all count as True;
    their probabilities add up, likewise for False. Already a probability, so no extra map.
    Raises :class:`~finece_guard.errors.ScoreReadoutError` if neither appears (the generator did
    not answer True/False; ask for more ``top_logprobs``).
    """
    true_lps: list[float] = []
    false_lps: list[float] = []
    for token, lp in top_logprobs:
        if lp is None or math.isnan(lp):
            continue
        word = _word(token)
        if word in _TRUE_WORDS:
            true_lps.append(lp)
        elif word in _FALSE_WORDS:
            false_lps.append(lp)
    if not true_lps and not false_lps:
        raise ScoreReadoutError(
            "P(True) readout: neither a True nor a False token among the top_logprobs; the generator did not "
            "answer True/False (check the prompt is continued, and request more top_logprobs)"
        )
    lt = float(logsumexp(true_lps)) if true_lps else -math.inf
    lf = float(logsumexp(false_lps)) if false_lps else -math.inf
    return float(math.exp(lt - logsumexp([lt, lf])))


# --------------------------------------------------------------------------- verbalized confidence

VERBALIZED_INSTRUCTION = (
    "You will be given a question and a proposed answer to it. How likely is it that the proposed answer "
    "is correct? Reply with one line of the form 'Confidence: X%' where X is a number from 0 to 100, "
    "and nothing else."
)

_NUMBER = r"(\d+(?:\.\d+)?|\.\d+)"
_VALUE = re.compile(rf"{_NUMBER}\s*(?:(?:/|\bout\s+of\b)\s*{_NUMBER}|(%|\bper\s*cent\b))?", re.IGNORECASE)
_KEYWORD = re.compile(r"confiden", re.IGNORECASE)


def verbalized_messages(question: str, answer: str) -> list[dict[str, str]]:
    """Chat messages asking the generator to state its confidence in ``answer`` (Lin et al. 2022).

    A normal chat turn (``add_generation_prompt=True``); greedy decoding and ``max_tokens`` of about
    16 suffice. Parse the reply with :func:`parse_verbalized`.
    """
    if not question.strip():
        raise ConfigError("verbalized_messages: question must be a non-empty string")
    content = "\n".join(
        [
            VERBALIZED_INSTRUCTION,
            "",
            f"<question>\n{sanitize(question)}\n</question>",
            f"<proposed_answer>\n{sanitize(answer)}\n</proposed_answer>",
        ]
    )
    return [{"role": "user", "content": content}]


def parse_verbalized(text: str) -> float | None:
    """A stated confidence in [0, 1] read from ``text``, or None when there is none.

    Reads the first number after the word "confidence"/"confident" (or the first number in the
    text when that word is absent). Forms: ``80%``, ``80 percent`` -> 0.8; ``8/10`` and
    ``8 out of 10`` -> 0.8; ``0.8`` -> 0.8; a bare number in (1, 100] is read as a percentage
    (``Confidence: 80`` -> 0.8).
    Values above 100 (or a fraction above 1) give None: the model did not follow the format.
    """
    keyword = _KEYWORD.search(text)
    match = _VALUE.search(text, keyword.end()) if keyword else None
    if match is None:
        match = _VALUE.search(text)
    if match is None:
        return None
    number = float(match.group(1))
    if match.group(2) is not None:  # a fraction a/b
        denominator = float(match.group(2))
        value = number / denominator if denominator > 0 else math.nan
    elif match.group(3) is not None or number > 1.0:  # percent sign/word, or a bare percentage
        value = number / 100.0
    else:
        value = number
    return value if 0.0 <= value <= 1.0 else None


# --------------------------------------------------------------------------- self-consistency


def _finals(finals: Sequence[str | None], what: str) -> Sequence[str | None]:
    if len(finals) == 0:
        raise MetricError(f"{what}: no sampled final answers given; sample n >= 1 answers per question")
    return finals


def self_consistency(finals: Sequence[str | None], reference: str | None) -> float:
    """Share of the ``n`` sampled final answers equal to ``reference`` (Wang et al. 2023).

    ``finals`` are the checker-normalised final answers of ``n`` extra samples (None = the checker
    could not parse one); ``reference`` is the evaluated answer's own final. Unparseable samples
    count in the denominator as disagreeing; an unparseable ``reference`` gets 0.0. Already a
    frequency in [0, 1], so no extra map.
    """
    _finals(finals, "self_consistency")
    if reference is None:
        return 0.0
    return sum(1 for f in finals if f is not None and f == reference) / len(finals)


def majority_agreement(finals: Sequence[str | None]) -> float:
    """Share of the ``n`` sampled answers that give the most common parseable answer (0.0 if none parse)."""
    _finals(finals, "majority_agreement")
    counts = Counter(f for f in finals if f is not None)
    if not counts:
        return 0.0
    return counts.most_common(1)[0][1] / len(finals)
