"""The evaluation harness: one greedy answer per question, scored by FineCE and by every baseline.

Why this module exists: FineCE is only worth its cost if its confidences beat cheaper signals on
the *same* answers, at the positions a guard would act on. For each question this module

1. streams one greedy answer (temperature 0) with ``top_logprobs``, so the logprob baselines read
   the very tokens that were judged, and labels it with :func:`~finece_guard.data.is_correct`;
2. replays the answer's tokens through each checkpoint strategy exactly as
   :class:`~finece_guard.runtime.monitor.RunMonitor` feeds them while streaming
   (:func:`replay_checkpoints`), and scores every distinct state once: the question alone, each
   partial prefix any strategy picked, and the full answer;
3. per strategy, builds the trace ``question, partial..., full`` and refines it with retrospective
   BCI (paper eq. 5); optionally runs BCI look-ahead at the first partial checkpoint;
4. computes the baselines: First-Prob, mean/min token probability, mean top-k entropy, DeepConf
   lowest group confidence (from the stream), P(True) and verbalized confidence (one extra
   generator call each) and self-consistency (``sc_n`` extra sampled answers).

Every finished question is one JSON line (:class:`AnswerRecord`) appended, flushed and fsynced to
``records-<partition>.jsonl`` next to a ``.meta.json`` of the settings: a killed run loses only
the questions in flight, a re-run skips finished ones, and a run with other settings is refused.
A question whose generation or FineCE scoring fails, or whose baseline call meets a transient
backend error (connection refused, timeout, 5xx after the client's retries), is not written: it is
retried next run. A baseline that fails otherwise (no True/False token, unparseable verbalized
reply, HTTP 4xx) is recorded as ``None`` with its error.

The full answer is scored as a FINAL state even when it hit ``max_tokens``: it is the answer that
is judged. ``finish_reason`` is kept so the report can count truncated answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from finece_guard.backends.base import BaseScorer, ScoreRequest
from finece_guard.backends.http import is_transient
from finece_guard.backends.openai_generator import Message, OpenAICompatGenerator, StreamStats, question_messages
from finece_guard.data.checkers import extract_final, is_correct
from finece_guard.data.construction import TaskSpec
from finece_guard.data.partition import PARTITIONS
from finece_guard.data.records import QARecord
from finece_guard.errors import BackendError, ConfigError, FineCEError, MetricError
from finece_guard.evaluation import baselines as bl
from finece_guard.journal import Journal, gather_or_cancel
from finece_guard.runtime.bci import look_ahead, refine
from finece_guard.runtime.checkpoints import CheckpointStrategy, parse_strategy
from finece_guard.types import CheckpointKind, Score, TokenEvent

#: Default checkpoint strategies: the paper's three (periodic every 32 tokens, entropy above 1.5 nats).
DEFAULT_STRATEGIES: tuple[str, ...] = ("paragraph", "periodic:32", "entropy:1.5")

#: Baseline names, in report order.
BASELINES: tuple[str, ...] = (
    "first_prob",
    "mean_token_prob",
    "min_token_prob",
    "mean_entropy",
    "deepconf_lgc",
    "p_true",
    "verbalized",
    "self_consistency",
)

_RECORDS_VERSION = 1

Item = TypeVar("Item")


# --------------------------------------------------------------------------- settings


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
    alpha: float = 0.5
    window: int = 2
    sc_n: int = 5
    sc_temperature: float = 0.8
    sc_top_p: float = 0.95
    lookahead_w: int = 0
    lookahead_d: int = 0
    lookahead_tokens: int = 64
    top_logprobs: int = 20
    deepconf_window: int = 32
    verbalized_max_tokens: int = 16
    verbalized_prefix: str = "Confidence:"
    seed: int = 0

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
        return data


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class StateScore:
    """FineCE's raw score of one distinct state of the answer (the first ``n_tokens`` tokens)."""

    kind: str
    n_tokens: int
    value: float
    spread: float
    mass: float


@dataclass(frozen=True)
class StrategyTrace:
    """One strategy's checkpoints on the answer: question (index 0), partials, full answer (last).

    ``n_tokens[i]`` is how many answer tokens checkpoint ``i`` had seen; ``raw`` and ``bci`` are
    FineCE's scores and their retrospective BCI refinement. With ``z`` = number of checkpoints
    after the question, p(1) is index 1 and p(z-1) index ``z - 1`` (the question when the answer has
    no partial checkpoint, i.e. z = 1; then p(1) is the full answer).
    """

    n_tokens: tuple[int, ...]
    reasons: tuple[str, ...]
    raw: tuple[float, ...]
    bci: tuple[float, ...]
    lookahead: float | None = None
    lookahead_paths: tuple[tuple[float, ...], ...] = ()

    @property
    def z(self) -> int:
        """Checkpoints after the question-only state (partials + the full answer)."""
        return len(self.raw) - 1

    @property
    def n_partial(self) -> int:
        return len(self.raw) - 2

    def at(self, position: str, *, refined: bool = False) -> float:
        """Score at ``question`` | ``p1`` | ``pz1`` | ``full`` (raw, or BCI-refined)."""
        values = self.bci if refined else self.raw
        index = {"question": 0, "p1": 1, "pz1": self.z - 1, "full": self.z}.get(position)
        if index is None:
            raise ConfigError(f"position {position!r}: use question, p1, pz1 or full")
        return values[index]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StrategyTrace:
        return cls(
            n_tokens=tuple(data["n_tokens"]),
            reasons=tuple(data["reasons"]),
            raw=tuple(data["raw"]),
            bci=tuple(data["bci"]),
            lookahead=data.get("lookahead"),
            lookahead_paths=tuple(tuple(p) for p in data.get("lookahead_paths", ())),
        )


@dataclass(frozen=True)
class AnswerRecord:
    """Everything measured on one question's greedy answer (one JSON line of the records file)."""

    key: str
    task: str
    record_id: str
    partition: str
    question: str
    answer: str
    correct: bool
    final: str | None
    n_tokens: int
    finish_reason: str | None
    tokens: tuple[str, ...]
    token_logprobs: tuple[float | None, ...]
    states: tuple[StateScore, ...]
    strategies: dict[str, StrategyTrace]
    baselines: dict[str, float | None]
    baseline_errors: dict[str, str] = field(default_factory=dict)
    sc_finals: tuple[str | None, ...] = ()
    verbalized_text: str | None = None
    seconds: float = 0.0
    version: int = _RECORDS_VERSION

    @property
    def full_score(self) -> float:
        """FineCE's raw score of the full answer."""
        return next(s.value for s in reversed(self.states) if s.kind == CheckpointKind.FINAL.value)

    @property
    def question_score(self) -> float:
        """FineCE's raw score of the question alone."""
        return next(s.value for s in self.states if s.kind == CheckpointKind.QUESTION.value)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, line: str) -> AnswerRecord:
        data = json.loads(line)
        if data.get("version") != _RECORDS_VERSION:
            raise ValueError(f"records version {data.get('version')!r}, expected {_RECORDS_VERSION}")
        data["tokens"] = tuple(data["tokens"])
        data["token_logprobs"] = tuple(data["token_logprobs"])
        data["states"] = tuple(StateScore(**s) for s in data["states"])
        data["strategies"] = {k: StrategyTrace.from_dict(v) for k, v in data["strategies"].items()}
        data["sc_finals"] = tuple(data.get("sc_finals", ()))
        return cls(**data)


def question_key(spec: TaskSpec, record: QARecord) -> str:
    """The records file's key of a question: ``<task spec>:<record id>``."""
    return f"{spec}:{record.id}"


def records_path(out_dir: Path, partition: str) -> Path:
    """Where a partition's records live in an eval output folder."""
    return out_dir / f"records-{partition}.jsonl"


def read_records(path: Path, keys: Iterable[str] | None = None) -> list[AnswerRecord]:
    """Records in ``path`` (a torn or unreadable line is skipped), optionally only ``keys``, in file order.

    A key written twice (two runs racing on one file) is read once, first copy wins.
    """
    if not path.is_file():
        return []
    wanted = set(keys) if keys is not None else None
    out: dict[str, AnswerRecord] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        with contextlib.suppress(ValueError, TypeError, KeyError):
            rec = AnswerRecord.from_json(line)
            if (wanted is None or rec.key in wanted) and rec.key not in out:
                out[rec.key] = rec
    return list(out.values())


# --------------------------------------------------------------------------- checkpoints


def replay_checkpoints(tokens: Sequence[TokenEvent], strategy: CheckpointStrategy) -> list[tuple[int, str]]:
    """``(n_tokens, reason)`` of each partial checkpoint ``strategy`` closes while ``tokens`` stream.

    Tokens are fed one by one exactly as :meth:`RunMonitor.feed` does (``since_last`` counts tokens
    since the previous checkpoint, the newest included). A checkpoint closed by the very last token
    is the full answer, not a partial one, so it is left out (as :meth:`RunMonitor.finish` does).
    """
    out: list[tuple[int, str]] = []
    last = 0
    seen: list[TokenEvent] = []
    for token in tokens:
        seen.append(token)
        reason = strategy.reason(seen, len(seen) - last)
        if reason:
            out.append((len(seen), reason))
            last = len(seen)
    if out and out[-1][0] == len(tokens):
        out.pop()
    return out


# --------------------------------------------------------------------------- generator interface


class EvalGenerator(Protocol):
    """What the harness needs from the generator (implemented by :class:`ServedEvalGenerator`)."""

    def astream(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        seed: int | None = None,
        stats: StreamStats | None = None,
    ) -> AsyncIterator[TokenEvent]: ...

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
    ) -> list[str]: ...

    async def next_token_logprobs(self, messages: Sequence[Message], *, top_logprobs: int) -> list[tuple[str, float]]:
        """Top alternatives of the one token that continues the last (assistant) message, greedy."""
        ...

    async def complete(self, messages: Sequence[Message], *, max_tokens: int) -> str:
        """A greedy chat reply; a last ``assistant`` message is continued (the reply excludes it)."""
        ...


class ServedEvalGenerator(OpenAICompatGenerator):
    """The OpenAI-compatible generator plus the two one-shot calls the prompted baselines need."""

    async def next_token_logprobs(self, messages: Sequence[Message], *, top_logprobs: int) -> list[tuple[str, float]]:
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": list(messages),
            "max_tokens": 1,
            "temperature": 0.0,
            "logprobs": True,
            "top_logprobs": top_logprobs,
            "continue_final_message": True,
            "add_generation_prompt": False,
        }
        body = await self.http.post_json("/chat/completions", payload)
        try:
            top = body["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
            return [(str(t["token"]), float(t["logprob"])) for t in top]
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise BackendError(f"no top_logprobs in the generator's response: {str(body)[:300]}") from exc

    async def complete(self, messages: Sequence[Message], *, max_tokens: int) -> str:
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": list(messages),
            "max_tokens": max_tokens,
            "temperature": 0.0,
        }
        if messages and messages[-1]["role"] == "assistant":
            payload |= {"continue_final_message": True, "add_generation_prompt": False}
        body = await self.http.post_json("/chat/completions", payload)
        try:
            return str(body["choices"][0]["message"]["content"] or "")
        except (KeyError, IndexError, TypeError) as exc:
            raise BackendError(f"unexpected chat response from the generator: {str(body)[:300]}") from exc


class _SeededSampler:
    """Look-ahead sampler with a fixed per-question seed (reproducible continuations)."""

    def __init__(self, generator: EvalGenerator, seed: int) -> None:
        self.generator = generator
        self.seed = seed

    async def sample_continuations(self, question: str, answer_prefix: str, *, n: int, max_tokens: int) -> list[str]:
        return await self.generator.sample_continuations(
            question, answer_prefix, n=n, max_tokens=max_tokens, seed=self.seed
        )


def _seed(base: int, *parts: object) -> int:
    digest = hashlib.sha256("|".join(map(str, (base, *parts))).encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


# --------------------------------------------------------------------------- one question


def _logprob_baselines(tokens: Sequence[TokenEvent], config: EvalConfig) -> dict[str, Callable[[], float]]:
    return {
        "first_prob": lambda: bl.first_prob(tokens),
        "mean_token_prob": lambda: bl.mean_token_prob(tokens),
        "min_token_prob": lambda: bl.min_token_prob(tokens),
        "mean_entropy": lambda: bl.mean_entropy_conf(tokens),
        "deepconf_lgc": lambda: bl.lowest_group_conf(tokens, window=config.deepconf_window),
    }


async def _baselines(
    record: QARecord,
    prompt: str,
    answer: str,
    final: str | None,
    tokens: Sequence[TokenEvent],
    generator: EvalGenerator,
    config: EvalConfig,
    key: str,
) -> tuple[dict[str, float | None], dict[str, str], tuple[str | None, ...], str | None]:
    values: dict[str, float | None] = {}
    errors: dict[str, str] = {}
    for name, fn in _logprob_baselines(tokens, config).items():
        try:
            values[name] = fn()
        except (MetricError, ConfigError) as exc:
            values[name], errors[name] = None, f"{type(exc).__name__}: {exc}"

    async def ptrue() -> float:
        top = await generator.next_token_logprobs(bl.ptrue_messages(prompt, answer), top_logprobs=config.top_logprobs)
        return bl.read_ptrue(top)

    async def verbalized() -> str:
        messages = bl.verbalized_messages(prompt, answer)
        if config.verbalized_prefix:
            messages.append({"role": "assistant", "content": config.verbalized_prefix})
        reply = await generator.complete(messages, max_tokens=config.verbalized_max_tokens)
        return config.verbalized_prefix + reply

    async def samples() -> list[str]:
        return await generator.sample_continuations(
            prompt, "", n=config.sc_n, max_tokens=config.max_tokens, temperature=config.sc_temperature,
            top_p=config.sc_top_p, seed=_seed(config.seed, key, "self-consistency"),
        )  # fmt: skip

    jobs: list[Awaitable[Any]] = [ptrue(), verbalized()]
    if config.sc_n > 0:
        jobs.append(samples())
    results = await asyncio.gather(*jobs, return_exceptions=True)
    for r in results:
        # a server that is down or overloaded fails the question (retried next run) instead of
        # leaving a permanent hole in a baseline; a readout or HTTP 4xx problem is recorded
        if isinstance(r, BaseException) and (not isinstance(r, FineCEError) or is_transient(r)):
            raise r
    p_true, verb, *rest = results
    if isinstance(p_true, BaseException):
        values["p_true"], errors["p_true"] = None, f"{type(p_true).__name__}: {p_true}"
    else:
        values["p_true"] = float(p_true)
    verbalized_text: str | None = None
    if isinstance(verb, BaseException):
        values["verbalized"], errors["verbalized"] = None, f"{type(verb).__name__}: {verb}"
    else:
        verbalized_text = str(verb)
        values["verbalized"] = bl.parse_verbalized(verbalized_text)
        if values["verbalized"] is None:
            errors["verbalized"] = f"no confidence could be read from the reply {verbalized_text[:80]!r}"
    sc_finals: tuple[str | None, ...] = ()
    if config.sc_n == 0:
        values["self_consistency"], errors["self_consistency"] = None, "disabled (sc_n=0)"
    elif isinstance(rest[0], BaseException):
        values["self_consistency"], errors["self_consistency"] = None, f"{type(rest[0]).__name__}: {rest[0]}"
    else:
        sc_finals = tuple(extract_final(record, s) for s in rest[0])
        values["self_consistency"] = bl.self_consistency(sc_finals, final)
    return {name: values.get(name) for name in BASELINES}, errors, sc_finals, verbalized_text


async def evaluate_question(
    record: QARecord,
    spec: TaskSpec,
    *,
    generator: EvalGenerator,
    scorer: BaseScorer,
    config: EvalConfig,
) -> AnswerRecord:
    """Generate, label and score one question (see the module docstring); raises on a failed
    generation or FineCE score (the question is then retried by the next run)."""
    t0 = time.perf_counter()
    key = question_key(spec, record)
    prompt = record.prompt(with_context=spec.with_context)
    stats = StreamStats()
    tokens: list[TokenEvent] = []
    async for event in generator.astream(
        question_messages(prompt), max_tokens=config.max_tokens, temperature=0.0, stats=stats
    ):
        tokens.append(event)
    texts = [t.text for t in tokens]
    answer = "".join(texts)
    correct = is_correct(record, answer)
    final = extract_final(record, answer)

    strategies = config.parsed_strategies()
    checkpoints = {name: replay_checkpoints(tokens, strategy) for name, strategy in strategies.items()}

    # every distinct state once: question, each partial prefix any strategy picked, full answer
    states: dict[tuple[CheckpointKind, int], ScoreRequest] = {
        (CheckpointKind.QUESTION, 0): (prompt, None, CheckpointKind.QUESTION)
    }
    for n in sorted({n for cps in checkpoints.values() for n, _ in cps}):
        states[(CheckpointKind.PARTIAL, n)] = (prompt, "".join(texts[:n]), CheckpointKind.PARTIAL)
    states[(CheckpointKind.FINAL, len(tokens))] = (prompt, answer, CheckpointKind.FINAL)
    by_text: dict[tuple[CheckpointKind, str | None], int] = {}
    unique: list[ScoreRequest] = []
    slot: dict[tuple[CheckpointKind, int], int] = {}
    for state_key, request in states.items():
        text_key = (request[2], request[1])
        if text_key not in by_text:
            by_text[text_key] = len(unique)
            unique.append(request)
        slot[state_key] = by_text[text_key]

    scoring = scorer.ascore_many(unique, return_exceptions=True)
    baselines_job = _baselines(record, prompt, answer, final, tokens, generator, config, key)
    scored, (values, errors, sc_finals, verbalized_text) = await asyncio.gather(scoring, baselines_job)
    for result in scored:
        if isinstance(result, BaseException):
            raise result
    scores: list[Score] = [s for s in scored if isinstance(s, Score)]

    def value(kind: CheckpointKind, n: int) -> float:
        return scores[slot[(kind, n)]].value

    traces: dict[str, StrategyTrace] = {}
    for name, cps in checkpoints.items():
        n_tokens = (0, *(n for n, _ in cps), len(tokens))
        reasons = ("question only", *(r for _, r in cps), "full answer")
        raw = (value(CheckpointKind.QUESTION, 0), *(value(CheckpointKind.PARTIAL, n) for n, _ in cps),
               value(CheckpointKind.FINAL, len(tokens)))  # fmt: skip
        bci = tuple(float(v) for v in refine(list(raw), alpha=config.alpha, window=config.window) if v is not None)
        traces[name] = StrategyTrace(n_tokens=n_tokens, reasons=reasons, raw=raw, bci=bci)

    if config.lookahead:
        traces = await _with_lookahead(traces, prompt, texts, generator, scorer, config, key)

    return AnswerRecord(
        key=key,
        task=str(spec),
        record_id=record.id,
        partition=config.partition,
        question=prompt,
        answer=answer,
        correct=correct,
        final=final,
        n_tokens=len(tokens),
        finish_reason=stats.finish_reason,
        tokens=tuple(texts),
        token_logprobs=tuple(t.logprob for t in tokens),
        states=tuple(_state_score(kind, n, scores[slot[(kind, n)]]) for kind, n in states),
        strategies=traces,
        baselines=values,
        baseline_errors=errors,
        sc_finals=sc_finals,
        verbalized_text=verbalized_text,
        seconds=time.perf_counter() - t0,
    )


def _state_score(kind: CheckpointKind, n_tokens: int, score: Score) -> StateScore:
    return StateScore(kind.value, n_tokens, score.value, score.spread, score.mass)


async def _with_lookahead(
    traces: dict[str, StrategyTrace],
    prompt: str,
    texts: Sequence[str],
    generator: EvalGenerator,
    scorer: BaseScorer,
    config: EvalConfig,
    key: str,
) -> dict[str, StrategyTrace]:
    """BCI look-ahead at each strategy's first partial checkpoint (one run per distinct prefix)."""
    firsts = {name: t.n_tokens[1] for name, t in traces.items() if t.n_partial > 0}
    raw_at = {t.n_tokens[1]: t.raw[1] for t in traces.values() if t.n_partial > 0}
    sampler = _SeededSampler(generator, _seed(config.seed, key, "look-ahead"))
    prefixes = sorted(raw_at)
    done = await asyncio.gather(*(
        look_ahead(
            prompt, "".join(texts[:n]), raw_at[n], sampler=sampler, scorer=scorer, width=config.lookahead_w,
            depth=config.lookahead_d, alpha=config.alpha, max_tokens_per_step=config.lookahead_tokens,
        )
        for n in prefixes
    ))  # fmt: skip
    results = dict(zip(prefixes, done, strict=True))
    out: dict[str, StrategyTrace] = {}
    for name, trace in traces.items():
        if name in firsts:
            r = results[firsts[name]]
            trace = StrategyTrace(trace.n_tokens, trace.reasons, trace.raw, trace.bci, r.value, r.paths)
        out[name] = trace
    return out


# --------------------------------------------------------------------------- a run over many questions


def _meta_path(path: Path) -> Path:
    return path.with_name(path.name + ".meta.json")


def check_meta(path: Path, meta: dict[str, Any]) -> None:
    """Refuse to append to ``path`` records made with other settings; write the settings otherwise."""
    meta_file = _meta_path(path)
    if meta_file.is_file() and path.is_file() and path.stat().st_size > 0:
        try:
            old = json.loads(meta_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read {meta_file} ({exc}); delete it and {path} to start over") from exc
        keys = sorted(set(old) | set(meta))
        diff = {k: (old.get(k), meta.get(k)) for k in keys if old.get(k) != meta.get(k)}
        if diff:
            changes = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in diff.items())
            raise ConfigError(
                f"{path} holds answers evaluated with other settings ({changes}); re-run with the same "
                "settings to resume, or pass a new --out folder"
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    meta_file.write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")


@dataclass
class EvalRunReport:
    """What one pass over a partition did."""

    done_before: int = 0
    evaluated: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0


async def run_journaled(
    items: Sequence[Item],
    out: Path,
    *,
    key: Callable[[Item], str],
    work: Callable[[Item], Awaitable[AnswerRecord]],
    meta: dict[str, Any],
    concurrency: int,
    on_done: Callable[[AnswerRecord | None], None] | None = None,
) -> EvalRunReport:
    """``work`` on every item not yet in the journal ``out``, at most ``concurrency`` at once.

    Shared by :func:`run_eval` and re-scoring (:mod:`finece_guard.evaluation.compare`): ``meta``
    must match the settings ``out`` was started with; each finished record is appended and fsynced;
    an item whose ``work`` raises a :class:`FineCEError` is listed in :attr:`EvalRunReport.failed`
    (and retried by the next run); ``on_done`` sees every item's record, or None when it failed.
    """
    if concurrency < 1:
        raise ConfigError(f"concurrency={concurrency} must be at least 1")
    check_meta(out, meta)
    done = {r.key for r in read_records(out)}
    todo = [item for item in items if key(item) not in done]
    report = EvalRunReport(done_before=len(items) - len(todo))
    t0 = time.perf_counter()
    sem = asyncio.Semaphore(concurrency)
    journal = Journal(out, AnswerRecord.from_json)  # repairs a torn tail, fsyncs every record

    async def one(item: Item) -> None:
        result: AnswerRecord | None = None
        async with sem:
            try:
                result = await work(item)
            except FineCEError as exc:
                report.failed.append((key(item), f"{type(exc).__name__}: {exc}"))
            else:
                await journal.append(result.to_json())
                report.evaluated += 1
        if on_done is not None:
            on_done(result)

    async with journal:
        try:
            await gather_or_cancel(one(item) for item in todo)
        finally:
            report.seconds = time.perf_counter() - t0
    return report


async def run_eval(
    questions: Sequence[tuple[TaskSpec, QARecord]],
    out: Path,
    *,
    generator: EvalGenerator,
    scorer: BaseScorer,
    config: EvalConfig,
    meta: dict[str, Any] | None = None,
    concurrency: int = 4,
    on_done: Callable[[AnswerRecord | None], None] | None = None,
) -> EvalRunReport:
    """Evaluate ``questions`` (at most ``concurrency`` in flight), appending to ``out``.

    Questions already in ``out`` are skipped; ``meta`` (plus ``config``) must match the settings
    the file was started with. A question whose generation or FineCE scoring fails is listed in
    :attr:`EvalRunReport.failed` and retried by the next run.
    """

    async def work(question: tuple[TaskSpec, QARecord]) -> AnswerRecord:
        spec, record = question
        return await evaluate_question(record, spec, generator=generator, scorer=scorer, config=config)

    return await run_journaled(
        questions, out, key=lambda q: question_key(*q), work=work, meta={**config.to_meta(), **(meta or {})},
        concurrency=concurrency, on_done=on_done,
    )  # fmt: skip
