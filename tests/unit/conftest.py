"""Unit tests need neither a server nor the converted model: this plugin makes that true, not hoped.

For every test under ``tests/unit``:

* outbound TCP connections are refused (``ConnectionRefusedError``, exactly what a closed port
  gives, so code under test sees an ordinary unreachable server) unless the test is marked
  ``needs_server``; unix sockets, socketpairs and binding a free port stay allowed;
* ``FINECE_HOME`` points at an empty folder, so the converted default model (and anything else
  cached under the real home) is invisible, unless the test is marked ``needs_model``.

A test that quietly relied on a running vLLM or on ``make setup``'s converted model fails here
instead of passing on one machine and failing on a fresh clone. Marked tests are the explicit list
of exceptions (``pytest -m "not needs_model"`` runs the rest on a machine without the model).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

_REAL_CONNECT = socket.socket.connect
_REAL_CONNECT_EX = socket.socket.connect_ex


def _refuse(sock: socket.socket, address: Any) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        raise ConnectionRefusedError(f"unit tests must not reach a server (connect to {address!r}); "
                                     "mock the transport, or mark the test needs_server")  # fmt: skip


@pytest.fixture(autouse=True)
def _unit_isolation(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                    monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:  # fmt: skip
    if request.node.get_closest_marker("needs_server") is None:

        def connect(sock: socket.socket, address: Any) -> None:
            _refuse(sock, address)
            _REAL_CONNECT(sock, address)

        def connect_ex(sock: socket.socket, address: Any) -> int:
            _refuse(sock, address)
            return _REAL_CONNECT_EX(sock, address)

        monkeypatch.setattr(socket.socket, "connect", connect)
        monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    if request.node.get_closest_marker("needs_model") is None:
        home: Path = tmp_path_factory.mktemp("finece-home")
        monkeypatch.setenv("FINECE_HOME", str(home))
    yield
