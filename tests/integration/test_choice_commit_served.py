"""The choice-commit stage (finece_guard.data.choice_commit) on the REAL vLLM (CPU build) server.

1. ``commit_choice`` is constrained, not merely asked: offered one letter at a time, the server
   returns exactly that letter for each of them, whatever the model would prefer.
2. ``build-data --commit-choices`` and ``eval --commit-choices`` as a user runs them, with answers cut
   short (6 and 2 tokens, so most cannot contain "Answer: X"): every multiple-choice answer they
   label is checkable, and the ones the stage completed end in ``COMMIT_PREFIX`` + a letter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from finece_guard.backends.openai_generator import OpenAICompatGenerator
from finece_guard.config import DEFAULT_GENERATOR
from finece_guard.data.checkers import extract_choice
from finece_guard.data.choice_commit import COMMIT_PREFIX, commit_answer
from finece_guard.data.construction import TaskSpec, read_dataset
from finece_guard.evaluation.harness import read_records
from finece_guard.types import CheckpointKind
from tests.conftest import LiveServer

pytestmark = pytest.mark.integration


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "finece_guard.cli", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env, stdin=subprocess.DEVNULL)


@pytest.mark.asyncio(loop_scope="session")
async def test_commit_choice_returns_only_an_offered_letter(vllm_server: LiveServer) -> None:
    record = TaskSpec("arc_easy").records("test")[0]
    question = record.prompt()
    generator = OpenAICompatGenerator(vllm_server.base_url, model=DEFAULT_GENERATOR)
    try:
        letters = "ABCDE"[: len(record.choices)]
        forced = [await generator.commit_choice(question, "I think" + COMMIT_PREFIX, [x]) for x in letters]
        free = await commit_answer(record, question, "Let me think about it.", generator)
    finally:
        await generator.aclose()
    assert forced == list(letters)
    assert free.startswith("Let me think about it." + COMMIT_PREFIX) and free[-1] in letters
    assert extract_choice(free, record.choices) == letters.index(free[-1])


def test_build_data_and_eval_commit_every_unreadable_answer(vllm_server: LiveServer, tmp_path: Path) -> None:
    common = ("--tasks", "arc_easy", "--limit", "2", "--base-url", vllm_server.base_url, "--quiet", "--commit-choices")
    data = tmp_path / "data.jsonl"
    build = _cli("build-data", "--out", str(data), "--partition", "dev", "--k", "2", "--levels", "0",
                 "--max-tokens", "6", *common)  # fmt: skip
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    assert json.loads(data.with_name(data.name + ".meta.json").read_text())["commit_choices"] is True
    records = {r.id: r for r in TaskSpec("arc_easy").records("dev")}
    finals = [(q, s) for q in read_dataset([data]) for s in q.states if s.kind is CheckpointKind.FINAL]
    assert len(finals) == 4
    for q, s in finals:
        assert s.answer is not None and extract_choice(s.answer, records[q.record_id].choices) is not None, s.answer
    assert any(COMMIT_PREFIX in (s.answer or "") for _, s in finals), "6-token answers: some must need the stage"

    out = tmp_path / "eval"
    ev = _cli("eval", "--out", str(out), "--sc-n", "2", "--max-tokens", "2", "--bootstrap", "20", "--no-plots",
              *common)  # fmt: skip
    assert ev.returncode == 0, ev.stdout[-3000:] + ev.stderr[-3000:]
    answers = read_records(out / "records-test.jsonl")
    assert len(answers) == 2
    for r in answers:
        assert r.final is not None, r.answer  # checkable: a letter was read or committed
        free = "".join(r.tokens)
        assert r.answer == free or (r.answer.startswith(free.rstrip() + COMMIT_PREFIX) and len(r.answer) == len(
            free.rstrip() + COMMIT_PREFIX) + 1)  # fmt: skip
        assert all(f is not None for f in r.sc_finals)
    assert any(r.answer != "".join(r.tokens) for r in answers), [r.answer for r in answers]
