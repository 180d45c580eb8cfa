"""The unit-test isolation of tests/unit/conftest.py does what it says (so a leak cannot pass silently)."""

from __future__ import annotations

import socket

import httpx
import pytest

from finece_guard.backends.model_store import DEFAULT_MODEL_NAME
from finece_guard.config import load_settings


def _listening() -> socket.socket:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    return server


def test_a_listening_local_server_cannot_be_reached() -> None:
    with _listening() as server:
        port = server.getsockname()[1]
        with pytest.raises(ConnectionRefusedError, match="must not reach a server"), socket.socket() as s:
            s.connect(("127.0.0.1", port))
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2.0)


@pytest.mark.needs_server
def test_needs_server_lifts_the_guard() -> None:
    with _listening() as server, socket.socket() as s:
        s.connect(server.getsockname())


def test_the_converted_model_is_hidden() -> None:
    home = load_settings().home
    assert not any(home.iterdir()), home
    assert not (home / "models" / DEFAULT_MODEL_NAME).exists()
