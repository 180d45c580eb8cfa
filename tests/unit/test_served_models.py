"""The scorer's "know what you talk to" check: parsing vLLM's /models bodies and the binding rules.

Bodies are shaped exactly like vLLM 0.32's (captured from a real `finece-guard serve`); the HTTP
side runs over httpx.MockTransport (no server in unit tests; the real one is in
tests/integration/test_scorer_verification.py).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from finece_guard.adapters import AdapterManifest
from finece_guard.backends.http import OpenAIHTTP
from finece_guard.backends.model_store import STAMP
from finece_guard.backends.openai_scorer import OpenAICompatScorer
from finece_guard.backends.served_models import (
    ServedModel,
    check_manifest,
    check_scorer_entry,
    parse_models,
)
from finece_guard.errors import AdapterMismatchError, BackendConnectionError, ConfigError
from finece_guard.types import CheckpointKind

GEN, ADAPTER = "smollm2-135m-instruct", "finece"


def vllm_models_body(gen_root: str = "/m/SmolLM2-135M-Instruct", adapter_root: str = "/a/finece") -> dict[str, Any]:
    """A /v1/models body as vLLM 0.32 returns it (ids, root, parent, the permission noise)."""
    perm = [{"id": "modelperm-1", "object": "model_permission", "allow_sampling": True, "group": None}]
    return {
        "object": "list",
        "data": [
            {"id": GEN, "object": "model", "created": 1, "owned_by": "vllm", "root": gen_root, "parent": None,
             "max_model_len": 2048, "permission": perm},
            {"id": ADAPTER, "object": "model", "created": 1, "owned_by": "vllm", "root": adapter_root,
             "parent": GEN, "max_model_len": None, "permission": perm},
        ],
    }  # fmt: skip


def test_parse_vllm_body_tells_base_models_from_adapters() -> None:
    models = parse_models(vllm_models_body(), "http://h/v1/models")
    assert models[GEN] == ServedModel(GEN, "/m/SmolLM2-135M-Instruct", None)
    assert models[ADAPTER] == ServedModel(ADAPTER, "/a/finece", GEN)
    assert models[ADAPTER].is_adapter and not models[GEN].is_adapter


@pytest.mark.parametrize("body", [{"detail": "Not Found"}, {"data": "x"}, [1, 2], {"data": [{"name": "x"}]}, None])
def test_parse_refuses_what_is_not_a_model_list(body: Any) -> None:
    with pytest.raises(ConfigError, match=r"not an OpenAI-compatible model list.*ends in /v1"):
        parse_models(body, "http://h/models")


def test_typo_in_adapter_name_lists_served_models_and_suggests_the_right_one() -> None:
    models = parse_models(vllm_models_body(), "u")
    with pytest.raises(ConfigError) as info:
        check_scorer_entry(models, "fince", GEN, "http://h/v1")
    text = str(info.value)
    assert "'fince' is not served at http://h/v1" in text
    assert "'finece' (LoRA of 'smollm2-135m-instruct')" in text and "(base model)" in text
    assert "Did you mean model='finece'?" in text


def test_generator_used_as_scorer_is_refused() -> None:
    models = parse_models(vllm_models_body(), "u")
    with pytest.raises(ConfigError, match=r"is a base model, not a FineCE LoRA adapter.*model='finece'"):
        check_scorer_entry(models, GEN, GEN, "http://h/v1")


def test_adapter_of_another_generator_is_a_mismatch() -> None:
    body = vllm_models_body()
    body["data"].append({"id": "other-gen", "root": "/m/other", "parent": None})
    models = parse_models(body, "u")
    mismatch = r"is a LoRA of 'smollm2-135m-instruct', but the generator is 'other-gen'"
    with pytest.raises(AdapterMismatchError, match=mismatch):
        check_scorer_entry(models, ADAPTER, "other-gen", "http://h/v1")
    with pytest.raises(ConfigError, match=r"generator model 'nope' is not served"):
        check_scorer_entry(models, ADAPTER, "nope", "http://h/v1")
    entry, base = check_scorer_entry(models, ADAPTER, GEN, "http://h/v1")
    assert entry.id == ADAPTER and base is not None and base.id == GEN
    assert check_scorer_entry(models, ADAPTER, None, "http://h/v1")[0] == entry  # any served base


def _folders(tmp_path: Path, manifest_base: str, stamp_sha: str | None, sha: str = "a" * 64) -> tuple[Path, Path]:
    base = tmp_path / "SmolLM2-135M-Instruct"
    base.mkdir()
    if stamp_sha is not None:
        (base / STAMP).write_text(json.dumps({"weights_sha256": stamp_sha, "files": {}}))
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    AdapterManifest(base_model=manifest_base, base_model_sha256=sha, trained=True).write(adapter)
    return base, adapter


def test_manifest_must_name_the_served_base_model(tmp_path: Path) -> None:
    base, adapter = _folders(tmp_path, "Qwen2-0.5B", stamp_sha=None)
    scorer, gen = ServedModel(ADAPTER, str(adapter), GEN), ServedModel(GEN, str(base), None)
    with pytest.raises(AdapterMismatchError, match=r"made for base model 'Qwen2-0.5B'.*'SmolLM2-135M-Instruct'"):
        check_manifest(scorer, gen)


def test_manifest_weight_hash_is_compared_when_the_model_folder_has_our_stamp(tmp_path: Path) -> None:
    base, adapter = _folders(tmp_path, "SmolLM2-135M-Instruct", stamp_sha="b" * 64)
    scorer, gen = ServedModel(ADAPTER, str(adapter), GEN), ServedModel(GEN, str(base), None)
    with pytest.raises(AdapterMismatchError, match=r"weights aaaaaaaaaaaa.*weights bbbbbbbbbbbb"):
        check_manifest(scorer, gen)
    (base / STAMP).write_text(json.dumps({"weights_sha256": "a" * 64}))
    manifest = check_manifest(scorer, gen)
    assert manifest is not None and manifest.base_model == "SmolLM2-135M-Instruct"


def test_manifest_check_is_skipped_where_it_cannot_be_known(tmp_path: Path) -> None:
    remote = ServedModel(ADAPTER, "/nonexistent/adapter", GEN)
    assert check_manifest(remote, ServedModel(GEN, "/nonexistent/model", None)) is None
    _, adapter = _folders(tmp_path, "Other", stamp_sha=None)
    # adapter readable, base model a hub id (not a folder): the manifest is returned, not judged
    manifest = check_manifest(ServedModel(ADAPTER, str(adapter), GEN), ServedModel(GEN, "HuggingFaceTB/x", None))
    assert manifest is not None and manifest.base_model == "Other"


# ----------------------------------------------------------------------------- over HTTP (mock)

SCORE_BODY = {"choices": [{"logprobs": {"content": [{"token": "9", "logprob": -0.1, "top_logprobs": [
    {"token": "9", "logprob": -0.1}, {"token": "0", "logprob": -2.4}]}]}}]}  # fmt: skip


def _scorer(handler: Any, url: str = "http://h/v1", **kw: Any) -> OpenAICompatScorer:
    scorer = OpenAICompatScorer(url, generator_model=GEN, retries=0, **kw)
    scorer.http = OpenAIHTTP(url, retries=0, transport=httpx.MockTransport(handler))
    return scorer


def _server(models: dict[str, Any], calls: list[str], *, prefix: str = "/v1") -> Any:
    async def handler(request: httpx.Request) -> httpx.Response:
        calls.append(f"{request.method} {request.url.path}")
        if request.url.path == f"{prefix}/models":
            await asyncio.sleep(0.05)  # concurrent first calls overlap the check
            return httpx.Response(200, json=models)
        if request.url.path == f"{prefix}/chat/completions":
            return httpx.Response(200, json=SCORE_BODY)
        return httpx.Response(404, json={"detail": "Not Found"})

    return handler


@pytest.mark.asyncio
async def test_one_check_under_concurrent_first_calls_then_cached() -> None:
    calls: list[str] = []
    scorer = _scorer(_server(vllm_models_body(), calls))
    scores = await asyncio.gather(*(scorer.ascore(f"q{i}?", None, CheckpointKind.QUESTION) for i in range(10)))
    assert len(scores) == 10 and calls.count("GET /v1/models") == 1
    await scorer.ascore("q?", None, CheckpointKind.QUESTION)
    assert calls.count("GET /v1/models") == 1
    assert scorer.binding is not None and scorer.binding.scorer.parent == GEN


@pytest.mark.asyncio
async def test_wrong_scorer_fails_before_any_score_request() -> None:
    calls: list[str] = []
    scorer = _scorer(_server(vllm_models_body(), calls), model="fince")
    with pytest.raises(ConfigError, match=r"Did you mean model='finece'"):
        await scorer.ascore("q?", None, CheckpointKind.QUESTION)
    assert "POST /v1/chat/completions" not in calls


@pytest.mark.asyncio
async def test_verify_false_skips_the_check() -> None:
    calls: list[str] = []
    scorer = _scorer(_server(vllm_models_body(), calls), model="fince", verify=False)
    await scorer.ascore("q?", None, CheckpointKind.QUESTION)
    assert calls == ["POST /v1/chat/completions"]


@pytest.mark.asyncio
async def test_url_without_v1_gets_the_right_url_suggested() -> None:
    calls: list[str] = []
    scorer = _scorer(_server(vllm_models_body(), calls), url="http://h:8031")
    with pytest.raises(ConfigError) as info:
        await scorer.ascore("q?", None, CheckpointKind.QUESTION)
    assert "Use base_url='http://h:8031/v1'" in str(info.value)
    calls.clear()
    other = _scorer(_server(vllm_models_body(), calls, prefix="/api"), url="http://h:8031/x")
    with pytest.raises(ConfigError, match=r"is not there \(HTTP 404\).*ends in /v1"):
        await other.ascore("q?", None, CheckpointKind.QUESTION)


@pytest.mark.asyncio
async def test_a_failed_check_is_run_again_next_time() -> None:
    state = {"up": False}
    calls: list[str] = []
    ok = _server(vllm_models_body(), calls)

    async def handler(request: httpx.Request) -> httpx.Response:
        if not state["up"]:
            raise httpx.ConnectError("refused", request=request)
        return await ok(request)

    scorer = _scorer(handler)
    with pytest.raises(BackendConnectionError):
        await scorer.ascore("q?", None, CheckpointKind.QUESTION)
    state["up"] = True
    score = await scorer.ascore("q?", None, CheckpointKind.QUESTION)
    assert score.value > 0.5 and calls.count("GET /v1/models") == 1


def test_sync_verify_server() -> None:
    calls: list[str] = []
    scorer = _scorer(_server(vllm_models_body(), calls))
    binding = scorer.verify_server()
    assert binding is not None and binding.scorer.id == ADAPTER and calls == ["GET /v1/models"]
