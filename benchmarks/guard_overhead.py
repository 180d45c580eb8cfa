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

from langchain_openai import ChatOpenAI

from benchmarks.common import finish, stamp
from finece_guard import FineCEGuard, OpenAICompatScorer, ParagraphEnd, Periodic
from finece_guard.data.loaders import load_task
from finece_guard.runtime.checkpoints import CheckpointStrategy, Entropy


async def one(llm: ChatOpenAI, guard: FineCEGuard | None, prompt: str) -> tuple[float, float, int]:
    t0 = time.perf_counter()
    ttft = None
    text = ""
    stream = guard.astream(prompt) if guard is not None else llm.astream(prompt)
    async for chunk in stream:
        if chunk.content and ttft is None:
            ttft = time.perf_counter() - t0
        text += str(chunk.content)
    return time.perf_counter() - t0, ttft or 0.0, len(text)


async def main_async(base_url: str, n: int, max_tokens: int) -> dict[str, object]:
    llm = ChatOpenAI(base_url=base_url, api_key="EMPTY", model="smollm2-135m-instruct", temperature=0,  # type: ignore[call-arg]
                     max_tokens=max_tokens, logprobs=True, top_logprobs=5)  # fmt: skip
    scorer = OpenAICompatScorer(base_url)
    strategies: dict[str, CheckpointStrategy] = {"paragraph": ParagraphEnd(), "periodic:32": Periodic(32),
                                                 "entropy:2.5": Entropy(2.5)}  # fmt: skip
    prompts = [r.prompt() for r in load_task("sciq", partition="test")[:n]]
    rows: dict[str, dict[str, list[float]]] = {k: {"wall": [], "ttft": []} for k in ["unguarded", *strategies]}
    # warm-up: vLLM-CPU compiles kernels for new batch shapes, so the first LoRA batches after a
    # start are several times slower; do them before measuring anything
    await one(llm, None, prompts[0])
    from finece_guard.types import CheckpointKind

    await scorer.ascore_many([(f"warm-up {i}", f"answer {i}", CheckpointKind.FINAL) for i in range(32)])
    await one(llm, FineCEGuard(llm, scorer=scorer, checkpoints=Periodic(8)), prompts[-1])
    for p in prompts:
        for name in rows:
            guard = None if name == "unguarded" else FineCEGuard(llm, scorer=scorer, checkpoints=strategies[name])
            wall, ttft, _ = await one(llm, guard, p)
            rows[name]["wall"].append(wall)
            rows[name]["ttft"].append(ttft)
    base = statistics.mean(rows["unguarded"]["wall"])
    summary = {
        name: {"mean_wall_s": statistics.mean(v["wall"]), "mean_ttft_s": statistics.mean(v["ttft"]),
               "wall_ratio_vs_unguarded": statistics.mean(v["wall"]) / base}
        for name, v in rows.items()
    }  # fmt: skip
    return {**stamp(base_url), "n_prompts": n, "max_tokens": max_tokens, "summary": summary, "raw": rows}


def markdown(result: dict[str, object], header: list[str]) -> list[str]:
    lines = [*header, "", "| mode | mean wall (s) | mean TTFT (s) | wall / unguarded |", "|---|---|---|---|"]
    for name, s in result["summary"].items():  # type: ignore[attr-defined]
        ratio = s["wall_ratio_vs_unguarded"]
        lines.append(f"| {name} | {s['mean_wall_s']:.2f} | {s['mean_ttft_s']:.2f} | {ratio:.2f} |")
    return lines


def header(result: dict[str, object]) -> list[str]:
    return [f"# Guard overhead ({result['date']})", "", f"{result['machine']}; {result['n_prompts']} SciQ prompts, "
            f"max_tokens {result['max_tokens']}, greedy, same server, interleaved."]  # fmt: skip


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
