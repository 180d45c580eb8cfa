"""`finece-guard serve` fails fast with a message that says what to do (no vLLM needed)."""

from __future__ import annotations

import socket
from pathlib import Path

from typer.testing import CliRunner

from finece_guard.backends.vllm_server import free_port
from finece_guard.cli import app

runner = CliRunner()


def test_help_texts_are_clear() -> None:
    for cmd, phrase in (("serve", "co-hosting the generator and the FineCE adapter"), ("ask", "BCI-refined trace")):
        result = runner.invoke(app, [cmd, "--help"])
        assert result.exit_code == 0
        assert phrase in " ".join(result.output.split())


def test_serve_missing_vllm_venv(tmp_path: Path) -> None:
    port = str(free_port())
    result = runner.invoke(app, ["serve", "--vllm-python", str(tmp_path / "nope" / "python"), "--port", port])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "no vLLM interpreter found" in text and "make setup" in text


def test_serve_bad_model_path(tmp_path: Path) -> None:
    fake_python = tmp_path / "python"
    fake_python.write_text("#!/bin/sh\nexit 1\n")
    fake_python.chmod(0o755)
    result = runner.invoke(
        app,
        [
            "serve",
            "--vllm-python",
            str(fake_python),
            "--model",
            str(tmp_path / "missing-model"),
            "--port",
            str(free_port()),
        ],
    )
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "not a Hugging Face model folder" in text and "missing-model" in text


def test_serve_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        result = runner.invoke(app, ["serve", "--port", str(port)])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert f"127.0.0.1:{port} is already in use" in text and "--port" in text


def test_ask_bad_checkpoint_spec_is_a_config_error() -> None:
    result = runner.invoke(app, ["ask", "--base-url", "http://127.0.0.1:9/v1", "--checkpoints", "weird", "Q?"])
    assert result.exit_code == 2
    assert "unknown checkpoint strategy" in " ".join(result.output.split())
