"""What every benchmark stamps on its results (date, machine, server), how it writes them, and the greedy
answers of the default generator that the prompt benchmarks compare."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import platform
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from finece_guard.backends.openai_generator import OpenAICompatGenerator, question_messages
from finece_guard.config import DEFAULT_GENERATOR
from finece_guard.evaluation.settings import EvalConfig

OUT = Path(__file__).parent / "results"


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10, check=False).stdout
    except OSError:
        return platform.processor() or "unknown CPU"
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    name = fields.get("Model name", platform.processor() or "unknown CPU").strip()
    flags = fields.get("Flags", "")
    simd = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return f"{name} ({simd}{', AMX' if 'amx_tile' in flags else ''})"


def stamp(base_url: str | None = None) -> dict[str, Any]:
    """Date (UTC), a one-line machine description and the server used."""
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{cpu_model()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}",
        "base_url": base_url,
    }


def finish(name: str, result: dict[str, Any], md_lines: list[str]) -> Path:
    """Write ``results/<name>.json`` and ``.md``; print the Markdown."""
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    md = OUT / f"{name}.md"
    md.write_text("\n".join(md_lines) + "\n")
    print("\n".join(md_lines))
    return md


def jsonl_records(path: Path) -> Iterator[dict[str, Any]]:
    """The JSON objects of a committed ``.jsonl`` or ``.jsonl.gz`` file, one per non-blank line."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


async def greedy_answers(base_url: str, prompts: list[str], concurrency: int) -> list[str]:
    """The default generator's greedy answer (the eval harness's ``max_tokens``) to each user turn, in order."""
    generator = OpenAICompatGenerator(base_url, model=DEFAULT_GENERATOR)
    gate = asyncio.Semaphore(concurrency)
    max_tokens = EvalConfig().max_tokens

    async def one(prompt: str) -> str:
        async with gate:
            return "".join([t.text async for t in generator.astream(question_messages(prompt), max_tokens=max_tokens)])

    try:
        return list(await asyncio.gather(*(one(p) for p in prompts)))
    finally:
        await generator.aclose()
