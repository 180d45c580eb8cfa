"""Credentials in URLs and API keys never appear in error messages, reprs or settings errors.

The transport tests use a real closed port on 127.0.0.1 (a real connection refusal, no mock) and
check the whole formatted traceback, chained exceptions included.
"""

from __future__ import annotations

import socket
import traceback

import httpx
import pytest

from finece_guard.backends.http import OpenAIHTTP, map_httpx_error
from finece_guard.backends.openai_generator import OpenAICompatGenerator
from finece_guard.backends.openai_scorer import OpenAICompatScorer
from finece_guard.backends.vllm_server import ServeSpec, VLLMServer
from finece_guard.config import FineCESettings, load_settings
from finece_guard.errors import BackendConnectionError, BackendHTTPError, ConfigError
from finece_guard.redact import redact_args, redact_text, redact_url
from finece_guard.types import CheckpointKind

SECRET = "s3cr3t-pw"
KEY = "sk-live-0123456789"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:s3cr3t-pw@host:8000/v1", "http://***@host:8000/v1"),
        ("https://s3cr3t-pw@host/v1", "https://***@host/v1"),
        ("http://host/v1?api_key=s3cr3t-pw&x=1", "http://host/v1?api_key=***&x=1"),
        ("http://host/v1?KEY=s3cr3t-pw", "http://host/v1?KEY=***"),
        ("http://host/v1?token=s3cr3t-pw", "http://host/v1?token=***"),
        ("http://127.0.0.1:8011/v1", "http://127.0.0.1:8011/v1"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_redact_text_masks_urls_bearer_keys_and_given_secrets() -> None:
    text = (
        f"cannot reach http://u:{SECRET}@h/v1/chat (x) Authorization: Bearer {KEY} "
        f"api_key='{KEY}' {{'token': '9'}} --api-key {SECRET}"
    )
    out = redact_text(text, [KEY])
    assert SECRET not in out and KEY not in out
    assert "http://***@h/v1/chat" in out
    assert "{'token': '9'}" in out  # a score token in a response body is not a credential
    assert redact_text("EMPTY key, 0.5 score", ["EMPTY"]) == "EMPTY key, 0.5 score"  # placeholder kept
    assert redact_args(["--model", "m", "--api-key", SECRET]) == ["--model", "m", "--api-key", "***"]


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://admin:{SECRET}@127.0.0.1:{port}/v1?api_key={SECRET}"


def _all_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc)


@pytest.mark.asyncio
async def test_closed_port_error_has_no_credentials() -> None:
    scorer = OpenAICompatScorer(_closed_port_url(), api_key=KEY, retries=0, verify=False)
    with pytest.raises(BackendConnectionError) as info:
        await scorer.ascore("What is 2+2?", None, CheckpointKind.QUESTION)
    text = _all_text(info.value)
    assert "cannot reach http://***@127.0.0.1:" in str(info.value)
    assert SECRET not in text and KEY not in text
    # the /models check on first use fails the same way, redacted
    checked = OpenAICompatScorer(_closed_port_url(), api_key=KEY, retries=0)
    with pytest.raises(BackendConnectionError) as info2:
        await checked.ascore("What is 2+2?", None, CheckpointKind.QUESTION)
    assert SECRET not in _all_text(info2.value) and "/models" in str(info2.value)
    await scorer.aclose()


@pytest.mark.asyncio
async def test_generator_stream_error_has_no_credentials() -> None:
    gen = OpenAICompatGenerator(_closed_port_url(), model="g", api_key=KEY, retries=0)
    with pytest.raises(BackendConnectionError) as info:
        async for _ in gen.astream([{"role": "user", "content": "hi"}], max_tokens=2):
            pass
    assert SECRET not in _all_text(info.value) and KEY not in _all_text(info.value)


@pytest.mark.asyncio
async def test_http_error_echoing_the_key_is_redacted() -> None:
    def handler(request: httpx.Request) -> httpx.Response:  # a proxy that echoes the request headers
        return httpx.Response(401, text=f"bad key {request.headers['authorization']} for {request.url}")

    url = f"http://u:{SECRET}@h/v1"
    http = OpenAIHTTP(url, api_key=KEY, retries=0, transport=httpx.MockTransport(handler))
    with pytest.raises(BackendHTTPError) as info:
        await http.post_json("/chat/completions", {})
    assert info.value.status_code == 401
    assert SECRET not in _all_text(info.value) and KEY not in _all_text(info.value)
    assert SECRET not in info.value.body and KEY not in info.value.body


def test_map_httpx_error_redacts_a_url_inside_the_transport_message() -> None:
    exc = httpx.ConnectError(f"failed for http://u:{SECRET}@h/v1 with {KEY}")
    mapped = map_httpx_error(exc, f"http://u:{SECRET}@h/v1/models", (KEY,))
    assert SECRET not in str(mapped) and KEY not in str(mapped)


def test_reprs_and_settings_hide_credentials() -> None:
    url = f"http://u:{SECRET}@h/v1?api_key={SECRET}"
    for obj in (
        OpenAIHTTP(url, api_key=KEY),
        OpenAICompatScorer(url, api_key=KEY),
        OpenAICompatGenerator(url, model="g", api_key=KEY),
        FineCESettings(base_url=url, api_key=KEY),
    ):
        assert SECRET not in repr(obj) and KEY not in repr(obj), repr(obj)
        assert SECRET not in str(obj) and KEY not in str(obj)
    with pytest.raises(ConfigError) as info:
        load_settings(base_url=f"ftp://u:{SECRET}@h/v1", api_key=KEY, request_timeout_s=-1)
    assert SECRET not in _all_text(info.value) and KEY not in _all_text(info.value)
    with pytest.raises(ConfigError) as bad_scheme:
        OpenAIHTTP(f"ftp://u:{SECRET}@h/v1")
    assert SECRET not in str(bad_scheme.value) and "ftp://***@h/v1" in str(bad_scheme.value)


def test_server_log_tail_masks_an_api_key_passed_through(tmp_path) -> None:  # type: ignore[no-untyped-def]
    spec = ServeSpec(model_dir=tmp_path, served_name="g", python=tmp_path / "py", extra_args=("--api-key", KEY))
    server = VLLMServer(spec, log_path=tmp_path / "log")
    (tmp_path / "log").write_text(f"args: {{'api_key': ['{KEY}']}}\nserving http://u:{SECRET}@h/v1\n")
    assert KEY not in server.log_tail() and SECRET not in server.log_tail()
    assert KEY not in server.shown_command()


def test_start_failure_shows_the_command_without_the_key(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from finece_guard.backends.vllm_server import free_port
    from finece_guard.errors import ServerStartError

    python = tmp_path / "python"  # a "vLLM" that prints its arguments and exits at once
    python.write_text("#!/bin/sh\necho \"args: $*\"\nexit 3\n")
    python.chmod(0o755)
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    spec = ServeSpec(model_dir=model, served_name="g", python=python, port=free_port(), dtype="float32",
                     extra_args=("--api-key", KEY))  # fmt: skip
    with pytest.raises(ServerStartError) as info:
        VLLMServer(spec, startup_timeout_s=30, log_path=tmp_path / "log").start()
    text = str(info.value)
    assert "exited with code 3" in text and "--api-key ***" in text and "--dtype float32" in text
    assert KEY not in text


def test_cli_error_line_has_no_credentials() -> None:
    from typer.testing import CliRunner

    from finece_guard.cli import app

    result = CliRunner().invoke(app, ["ask", "--base-url", _closed_port_url(), "What is 2+2?"])
    assert result.exit_code == 2
    assert "error:" in result.output and "127.0.0.1" in result.output
    assert SECRET not in result.output
