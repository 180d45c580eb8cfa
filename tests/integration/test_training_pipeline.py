"""The training pipeline end to end on the REAL vLLM CPU server: build-data -> train -> serve -> score.

Tiny on purpose (2 questions, k=2, one level, 3 training steps) so it fits CI; it proves the
pieces connect: Alg. 1 data from the served generator, a LoRA trained on it with the same scorer
prompt, a manifest bound to the base model, and vLLM serving the new adapter for scoring.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from finece_guard import OpenAICompatScorer
from finece_guard.adapters import AdapterManifest
from finece_guard.backends.stack import resolve_stack
from finece_guard.backends.vllm_server import VLLMServer, free_port
from finece_guard.config import load_settings
from finece_guard.data.construction import read_dataset
from finece_guard.types import CheckpointKind

pytestmark = pytest.mark.integration


def _cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "finece_guard.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL)


def test_build_data_train_serve_score(vllm_server, tmp_path: Path) -> None:
    data = tmp_path / "data.jsonl"
    build = _cli(
        "build-data", "--out", str(data), "--tasks", "sciq+passage", "--limit", "2", "--k", "2", "--levels", "1",
        "--max-clusters", "1", "--max-tokens", "32", "--concurrency", "2", "--base-url", vllm_server.base_url,
        "--quiet",
    )  # fmt: skip
    assert build.returncode == 0, build.stdout + build.stderr
    questions = read_dataset([data])
    assert len(questions) == 2
    for q in questions:
        assert q.generations == q.expected_generations <= q.linear_bound == 2 * (1 + 1 * 1)
        assert 0.0 <= q.states[0].label <= 1.0 and q.states[0].kind is CheckpointKind.QUESTION
    # a re-run resumes: nothing left to build
    again = _cli("build-data", "--out", str(data), "--tasks", "sciq+passage", "--limit", "2", "--k", "2",
                 "--levels", "1", "--max-clusters", "1", "--max-tokens", "32", "--base-url", vllm_server.base_url,
                 "--quiet")  # fmt: skip
    assert again.returncode == 0 and "built 0" in again.stdout, again.stdout + again.stderr

    adapter = tmp_path / "adapter"
    train = _cli("train", str(data), "--out", str(adapter), "--max-steps", "3", "--batch-size", "2",
                 "--dev-fraction", "0", "--max-length", "384")  # fmt: skip
    assert train.returncode == 0, train.stdout + train.stderr
    manifest = AdapterManifest.read(adapter)
    assert manifest.trained and manifest.base_model == vllm_server.stack.base_model
    assert manifest.base_model_sha256 == vllm_server.stack.manifest.base_model_sha256
    assert json.loads((adapter / "adapter_config.json").read_text())["r"] == manifest.rank

    settings = load_settings()
    stack = resolve_stack(settings, adapter=adapter, port=free_port())
    with VLLMServer(stack.spec, startup_timeout_s=settings.startup_timeout_s) as server:
        scorer = OpenAICompatScorer(server.base_url, timeout_s=300)
        score = asyncio.run(scorer.ascore(questions[0].question, "The answer is", CheckpointKind.PARTIAL))
    assert 0.0 <= score.value <= 1.0 and score.mass > 0.0
