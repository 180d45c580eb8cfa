"""``pip install finece-guard`` with core dependencies only: it imports, runs a guarded call, names extras.

A fresh virtualenv gets the package and its core dependencies (no extras: no torch, pyarrow,
chromadb, langchain agents, matplotlib). In it, plain user code runs a guarded call against the
real vLLM server, and each optional part fails with an error that names the extra to install.
"""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from finece_guard.config import DEFAULT_GENERATOR

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXTRAS_ONLY = ("torch", "pyarrow", "chromadb", "langchain_chroma", "langgraph", "matplotlib", "transformers", "peft")


def test_core_install_imports_runs_a_guarded_call_and_names_extras(vllm_server, tmp_path: Path) -> None:
    env_dir = tmp_path / "base-venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    install = subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-c",
         str(ROOT / "requirements" / "constraints.txt"), str(ROOT)],
        capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr[-3000:]
    script = f"""
import importlib.util, json
from langchain_openai import ChatOpenAI
import finece_guard
from finece_guard import FineCEGuard, OpenAICompatScorer, AbortBelow, AcceptAbove, Periodic
missing = [m for m in {EXTRAS_ONLY!r} if importlib.util.find_spec(m) is not None]
url = {vllm_server.base_url!r}
llm = ChatOpenAI(base_url=url, api_key="EMPTY", model={DEFAULT_GENERATOR!r}, temperature=0, max_tokens=24,
                 logprobs=True, top_logprobs=5)
guard = FineCEGuard(llm, scorer=OpenAICompatScorer(url), checkpoints=Periodic(8), policies=[AcceptAbove(0.0)])
r = guard.invoke("Name a colour.")
errors = {{}}
def load():
    from finece_guard.data import load_task
    return load_task("sciq", partition="test")
for name, call in [("middleware", lambda: __import__("finece_guard.runtime.middleware")),
                   ("transformers", lambda: finece_guard.TransformersScorer("x")), ("data", load)]:
    try:
        call()
    except Exception as exc:
        errors[name] = type(exc).__name__ + ": " + str(exc)
print(json.dumps({{"installed_extras": missing, "answer": r.answer, "accepted": r.accepted,
                  "confidence": r.confidence, "errors": errors}}))
"""
    out = subprocess.run([str(py), "-c", script], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["installed_extras"] == [], got  # really a core-only environment
    assert got["answer"].strip() and got["accepted"] and got["confidence"] is not None
    assert "finece-guard[agents]" in got["errors"]["middleware"]
    assert "finece-guard[local]" in got["errors"]["transformers"]
    assert "finece-guard[data]" in got["errors"]["data"]
    assert sys.executable != str(py)
