"""Load: N concurrent guarded vs unguarded streams against one server (N = 16 / 32 / 64 by default).

Same prompts, greedy, one ``ChatOpenAI`` and one ``FineCEGuard`` shared by all N streams, measured
side by side in one run (unguarded then guarded at each N). Reported per N: generated tokens/s over
the whole batch, wall time, mean and p90 time to first token, the guarded/unguarded throughput
ratio, and the guard's checkpoints scored vs skipped (superseded under load), plus whether every
run's question-only and final states were scored, for each guard ``max_partial_scores`` cap
(``--partial-limits none,4,0``: no cap, at most 4 partial scores in flight across the runs, and
``0``: no partial checkpoint at all, only the question-only and final states every run must have
scored, which bounds what any partial-scoring policy can reach).
The server's scheduling policy and dtype are those ``finece-guard serve`` chose (priority
scheduling: scoring requests queue behind generation).

    make bench   (or: .venv/bin/python -m benchmarks.load --base-url http://127.0.0.1:8011/v1)

Writes benchmarks/results/load.json and .md.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from langchain_openai import ChatOpenAI

from benchmarks.common import finish, stamp
from finece_guard import FineCEGuard, OpenAICompatScorer
from finece_guard.config import DEFAULT_GENERATOR
from finece_guard.data.loaders import load_task
from finece_guard.types import CheckpointKind, TokenEvent

#: the guard ``max_partial_scores`` caps compared side by side (0: no partial checkpoint at all)
PARTIAL_LIMITS: tuple[int | None, ...] = (None, 4, 0)


@dataclass(frozen=True)
class NoPartials:
    """A checkpoint strategy that never fires: the guard scores only the question-only and final states."""

    @property
    def name(self) -> str:
        return "none"

    def reason(self, tokens: Sequence[TokenEvent], since_last: int) -> str | None:
        return None


async def _stream(target: Any, prompt: str) -> tuple[float, float, int, Any]:
    t0 = time.perf_counter()
    ttft: float | None = None
    chars = 0
    tokens = 0
    async for chunk in target.astream(prompt):
        if chunk.content and ttft is None:
            ttft = time.perf_counter() - t0
        chars += len(str(chunk.content))
        usage = getattr(chunk, "usage_metadata", None) or {}
        tokens += int(usage.get("output_tokens", 0))
    return time.perf_counter() - t0, ttft or 0.0, chars, tokens


def _last_state_scored(result: Any) -> bool:
    """The kept attempt's last state (final answer, or the stopped state of a length-cut one) has a score."""
    cps = result.attempts[0].trace.checkpoints
    return bool(cps) and cps[-1].checkpoint.kind is not CheckpointKind.QUESTION and cps[-1].score is not None


async def batch(llm: ChatOpenAI, prompts: list[str], guard: FineCEGuard | None) -> dict[str, Any]:
    """All prompts at once: unguarded streams of ``llm``, or guarded calls through one ``guard``."""
    t0 = time.perf_counter()
    extra: dict[str, Any] = {}
    ttfts: list[float] = []
    if guard is None:
        done = await asyncio.gather(*(_stream(llm, p) for p in prompts))
        tokens = sum(int(d[3]) for d in done)  # the server's own count (stream usage)
        ttfts = sorted(d[1] for d in done)
    else:
        outs = await asyncio.gather(*(guard.ainvoke(p) for p in prompts))
        tokens = sum(r.trace.tokens_generated for r in outs)
        cps = [sc for r in outs for a in r.attempts for sc in a.trace.checkpoints]

        def has(r: Any, kind: CheckpointKind) -> bool:
            return any(sc.checkpoint.kind is kind and sc.score is not None for sc in r.attempts[0].trace.checkpoints)

        extra = {"checkpoints_scored": sum(sc.score is not None for sc in cps),
                 "checkpoints_unscored": sum(sc.score is None for sc in cps),
                 "checkpoints_skipped": sum(len(a.trace.meta.get("skipped", ())) for r in outs for a in r.attempts),
                 "question_scored_share": sum(has(r, CheckpointKind.QUESTION) for r in outs) / len(outs),
                 "final_scored_share": sum(_last_state_scored(r) for r in outs) / len(outs)}  # fmt: skip
    wall = time.perf_counter() - t0
    return {
        "n": len(prompts),
        "wall_s": wall,
        "tokens": tokens,
        "tokens_per_s": tokens / wall,
        "ttft_mean_s": statistics.mean(ttfts) if ttfts else None,
        "ttft_p90_s": ttfts[int(0.9 * (len(ttfts) - 1))] if ttfts else None,
        **extra,
    }


async def ttft_guarded(guard: FineCEGuard, prompts: list[str]) -> list[float]:
    """TTFT of guarded *streams* at the same concurrency (the batch above uses ainvoke for the traces)."""
    done = await asyncio.gather(*(_stream(guard, p) for p in prompts))
    return sorted(d[1] for d in done)


async def run(base_url: str, sizes: list[int], max_tokens: int, limits: list[int | None]) -> dict[str, Any]:
    llm = ChatOpenAI(base_url=base_url, api_key="EMPTY", model=DEFAULT_GENERATOR, temperature=0,  # type: ignore[call-arg]
                     max_tokens=max_tokens, logprobs=True, top_logprobs=5, timeout=900,
                     stream_usage=True)  # fmt: skip
    scorer = OpenAICompatScorer(base_url, timeout_s=900)
    guards = {
        limit: FineCEGuard(llm, scorer=scorer, deadline_s=600.0, on_scorer_error="open",
                           max_partial_scores=limit or None, **({"checkpoints": NoPartials()} if limit == 0 else {}))
        for limit in limits
    }  # fmt: skip
    records = load_task("sciq", partition="test") + load_task("arc_easy", partition="test")
    prompts_all = [r.prompt() for r in records]
    await batch(llm, prompts_all[:4], None)  # warm-up (kernel compilation for new shapes)
    await batch(llm, prompts_all[:4], guards[limits[0]])
    rows = []
    for n in sizes:
        prompts = prompts_all[:n]
        plain = await batch(llm, prompts, None)
        for limit, guard in guards.items():  # side by side with the same unguarded run
            guarded = await batch(llm, prompts, guard)
            ttfts = await ttft_guarded(guard, prompts[: min(n, 16)])
            guarded["ttft_mean_s_streams"] = statistics.mean(ttfts)
            rows.append({"n": n, "max_partial_scores": limit, "unguarded": plain, "guarded": guarded,
                         "throughput_ratio": guarded["tokens_per_s"] / max(plain["tokens_per_s"], 1e-9)})  # fmt: skip
            assert guard.handler.active_runs == 0 and guard.handler.pending_tasks() == 0
    return {**stamp(base_url), "max_tokens": max_tokens, "rows": rows}


def markdown(result: dict[str, Any], header: list[str]) -> list[str]:
    lines = [*header, "", f"{result['machine']}; SciQ + ARC-Easy test prompts, greedy, max_tokens "
             f"{result['max_tokens']}, paragraph checkpoints, one guard shared by all streams.", "",
             "| N | partial-score cap | unguarded tok/s | guarded tok/s | ratio | unguarded wall s | guarded wall s "
             "| TTFT unguarded (mean / p90) | TTFT guarded streams (mean) | checkpoints scored / skipped "
             "| question, final scored |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in result["rows"]:
        u, g = r["unguarded"], r["guarded"]
        cap = r.get("max_partial_scores", "none")
        shown = "none" if cap is None else "0 (question + final only)" if cap == 0 else cap
        lines.append(
            f"| {r['n']} | {shown} | {u['tokens_per_s']:.1f} | {g['tokens_per_s']:.1f} | "
            f"{r['throughput_ratio']:.2f} | "
            f"{u['wall_s']:.1f} | {g['wall_s']:.1f} | {u['ttft_mean_s']:.2f} / {u['ttft_p90_s']:.2f} | "
            f"{g['ttft_mean_s_streams']:.2f} | {g['checkpoints_scored']} / {g['checkpoints_skipped']} | "
            f"{g['question_scored_share']:.0%}, {g['final_scored_share']:.0%} |"
        )
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-url", default="http://127.0.0.1:8011/v1")
    ap.add_argument("--sizes", default="16,32,64")
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument("--partial-limits", default=",".join("none" if x is None else str(x) for x in PARTIAL_LIMITS),
                    help="guard max_partial_scores values to compare; 0: no partial checkpoints at all")  # fmt: skip
    args = ap.parse_args()
    limits = [None if x == "none" else int(x) for x in args.partial_limits.split(",")]
    result = asyncio.run(run(args.base_url, [int(x) for x in args.sizes.split(",")], args.max_tokens, limits))
    finish("load", result, markdown(result, [f"# Load: guarded vs unguarded streams ({result['date']})"]))


if __name__ == "__main__":
    main()
