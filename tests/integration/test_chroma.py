"""Retrieval against REAL Chroma: the embedded store in a temp folder and a `chroma run` server.

Nothing is mocked: passages are embedded with the packaged all-MiniLM-L6-v2, stored by chromadb
and searched through langchain-chroma. The server fixture starts the `chroma` CLI that ships
with chromadb on 127.0.0.1:<free port> in its own process group, waits for
``GET /api/v2/heartbeat``, and stops the whole group by PID afterwards (asserting it is gone).
If the server cannot start, the test fails with the tail of its log; it is never skipped.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from langchain_core.documents import Document
from pydantic import ValidationError

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from finece_guard.embeddings import MiniLMEmbeddings
from finece_guard.errors import BackendConnectionError, ConfigError
from finece_guard.retrieval import (
    ChromaConfig,
    document_id,
    ingest,
    load_chroma_config,
    open_vectorstore,
    retrieved_ids,
)

pytestmark = pytest.mark.integration

PASSAGES = [
    ("photosynthesis", "Photosynthesis lets plants turn sunlight, water and carbon dioxide into glucose and oxygen."),
    ("mitochondria", "Mitochondria produce most of a cell's ATP through oxidative phosphorylation."),
    ("dna", "DNA is a double helix whose two strands are held together by base pairs: A with T, G with C."),
    ("gravity", "Newton's law of universal gravitation says the force between two masses falls with distance squared."),
    ("relativity", "Special relativity shows that light in vacuum has the same speed for every inertial observer."),
    ("entropy", "The second law of thermodynamics states that the entropy of an isolated system never decreases."),
    ("plate_tectonics", "Earthquakes and volcanoes mostly occur where the Earth's lithospheric plates meet and move."),
    ("water_cycle", "Water evaporates from oceans, condenses into clouds and falls back to the ground as rain."),
    ("periodic_table", "Mendeleev arranged the chemical elements by atomic weight into the first periodic table."),
    ("black_holes", "A black hole is a region of spacetime where gravity is so strong that not even light escapes."),
    ("vaccines", "Vaccines train the immune system to recognise a pathogen by exposing it to a harmless antigen."),
    ("ph", "The pH scale measures acidity: pure water has a pH of 7, acids lower and bases higher."),
]
QUERIES = [
    ("How do plants make their food from light?", "photosynthesis"),
    ("Which organelle generates the cell's energy?", "mitochondria"),
    ("Why can nothing escape from a collapsed star?", "black_holes"),
    ("What causes earthquakes?", "plate_tectonics"),
    ("How acidic is pure water?", "ph"),
]


def _docs() -> list[Document]:
    return [Document(page_content=text, metadata={"topic": topic}) for topic, text in PASSAGES]


@pytest.fixture(scope="module")
def emb() -> MiniLMEmbeddings:
    e = MiniLMEmbeddings(batch_size=16)
    e.load()
    return e


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _listen_addresses(port: int) -> list[str]:
    """Local addresses (hex, as in /proc/net/tcp*) of LISTEN sockets on ``port``."""
    found: list[str] = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as fh:
            for line in fh.readlines()[1:]:
                fields = line.split()
                addr, hex_port = fields[1].rsplit(":", 1)
                if int(hex_port, 16) == port and fields[3] == "0A":
                    found.append(addr)
    return found


@dataclass(frozen=True)
class ChromaServer:
    url: str
    port: int
    pid: int
    log: Path
    startup_s: float


def _tail(path: Path, n: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError as exc:
        return f"(no log: {exc})"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group, SIGKILL after 10 s, reap it, wait for the group to vanish."""
    pgid = proc.pid  # start_new_session=True: the server leads its own group
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        proc.wait(timeout=10)
    deadline = time.monotonic() + 10
    while _group_alive(pgid) and time.monotonic() < deadline:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        time.sleep(0.1)


@contextlib.contextmanager
def run_chroma_server(workdir: Path, startup_timeout_s: float = 60.0) -> Iterator[ChromaServer]:
    """`chroma run --host 127.0.0.1 --port <free> --path <workdir>/db`, healthy when the heartbeat answers."""
    exe = Path(sys.executable).with_name("chroma")
    if not exe.is_file():
        pytest.fail(f"the chroma CLI is missing at {exe}; reinstall chromadb in this venv (make setup)")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = workdir / "chroma-server.log"
    cmd = [str(exe), "run", "--host", "127.0.0.1", "--port", str(port), "--path", str(workdir / "db")]
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False", "NO_COLOR": "1"}
    t0 = time.monotonic()
    with log.open("wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)  # fmt: skip
    try:
        deadline = t0 + startup_timeout_s
        while True:
            rc = proc.poll()
            if rc is not None:
                pytest.fail(f"`{' '.join(cmd)}` exited with {rc} before it was healthy:\n{_tail(log)}")
            try:
                resp = httpx.get(f"{url}/api/v2/heartbeat", timeout=1.0)
                if resp.status_code == 200 and "nanosecond heartbeat" in resp.json():
                    break
            except (httpx.TransportError, ValueError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"`{' '.join(cmd)}` not healthy after {startup_timeout_s:.0f} s:\n{_tail(log)}")
            time.sleep(0.1)
        yield ChromaServer(url, port, proc.pid, log, time.monotonic() - t0)
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaServer]:
    with run_chroma_server(tmp_path_factory.mktemp("chroma-server")) as server:
        yield server
    assert not _group_alive(server.pid), f"chroma server process group {server.pid} outlived the fixture"


def _assert_search_works(store: object, emb: MiniLMEmbeddings) -> None:
    from langchain_chroma import Chroma

    assert isinstance(store, Chroma)
    by_topic = {topic: document_id(text) for topic, text in PASSAGES}
    for query, topic in QUERIES:
        hits = store.similarity_search(query, k=3)
        assert hits[0].metadata["topic"] == topic, (query, [h.metadata for h in hits])
        ids = retrieved_ids(hits)
        assert ids[0] == by_topic[topic]
        assert len(set(ids)) == 3
    scored = store.similarity_search_with_relevance_scores(QUERIES[0][0], k=2)
    assert all(0.0 <= s <= 1.0 for _, s in scored)  # cosine relevance, thanks to the hnsw space
    assert scored[0][1] > scored[1][1]


# ----------------------------------------------------------------------------- embedded store


def test_embedded_store_ingest_search_reingest(tmp_path: Path, emb: MiniLMEmbeddings) -> None:
    cfg = ChromaConfig(persist_dir=tmp_path / "db", collection="science")
    store = open_vectorstore(cfg, emb)
    assert ingest(store, _docs(), batch_size=5) == 12
    _assert_search_works(store, emb)
    assert ingest(store, _docs(), batch_size=5) == 0
    assert len(store.get()["ids"]) == 12

    # persisted: a fresh client on the same folder sees the same 12 and adds only what is new
    again = open_vectorstore(cfg, emb)
    assert len(again.get()["ids"]) == 12
    extra = Document(page_content="Sound travels faster in water than in air.", metadata={"topic": "sound"})
    assert ingest(again, [*_docs(), extra]) == 1
    assert len(again.get()["ids"]) == 13
    hit = again.similarity_search("How fast does sound move underwater?", k=1)[0]
    assert hit.id == document_id(extra.page_content) and hit.metadata == {"topic": "sound"}


def test_default_folder_is_home_chroma(tmp_path: Path, emb: MiniLMEmbeddings) -> None:
    store = open_vectorstore(ChromaConfig(), emb, home=tmp_path)
    assert (tmp_path / "chroma").is_dir()
    assert ingest(store, _docs()[:2]) == 2
    assert ChromaConfig().resolve_persist_dir(tmp_path) == tmp_path / "chroma"


def test_ids_duplicates_and_progress(tmp_path: Path, emb: MiniLMEmbeddings, capsys: pytest.CaptureFixture[str]) -> None:
    store = open_vectorstore(ChromaConfig(persist_dir=tmp_path / "db"), emb)
    docs = _docs()[:3]
    assert ingest(store, docs, ids=["a-1", "a-2", "a-3"], progress=True) == 3
    assert sorted(store.get()["ids"]) == ["a-1", "a-2", "a-3"]
    # Document.id is used when no ids are given; a repeated id inside one call is stored once
    dup = [Document(page_content="x one", id="x-1"), Document(page_content="x again", id="x-1")]
    assert ingest(store, dup) == 1
    assert store.get(ids=["x-1"])["documents"] == ["x one"]
    # no metadata at all is fine too (stored without metadata; search results get {})
    bare = Document(page_content="no metadata here")
    assert ingest(store, [bare]) == 1
    hit = store.similarity_search("a passage that has no metadata", k=1)[0]
    assert hit.id == document_id(bare.page_content) and hit.metadata == {}
    with pytest.raises(ConfigError, match="one id per document"):
        ingest(store, docs, ids=["only-one"])
    with pytest.raises(ConfigError, match="batch_size"):
        ingest(store, docs, batch_size=0)
    with pytest.raises(ConfigError, match="has no id"):
        retrieved_ids([Document(page_content="made up")])


def test_distance_of_existing_collection_cannot_change(tmp_path: Path, emb: MiniLMEmbeddings) -> None:
    open_vectorstore(ChromaConfig(persist_dir=tmp_path / "db", distance="cosine"), emb)
    with pytest.raises(ConfigError, match="already uses distance 'cosine'"):
        open_vectorstore(ChromaConfig(persist_dir=tmp_path / "db", distance="l2"), emb)
    l2 = open_vectorstore(ChromaConfig(persist_dir=tmp_path / "db", distance="l2", collection="other"), emb)
    assert ingest(l2, _docs()) == 12
    assert l2.similarity_search(QUERIES[0][0], k=1)[0].metadata["topic"] == QUERIES[0][1]


def test_config_validation_says_how_to_fix() -> None:
    cfg = ChromaConfig(url="https://chroma.example.org/")
    assert (cfg.url, cfg.host, cfg.port, cfg.ssl) == ("https://chroma.example.org", "chroma.example.org", 443, True)
    cfg = ChromaConfig(url="http://127.0.0.1:8123")
    assert (cfg.host, cfg.port, cfg.ssl) == ("127.0.0.1", 8123, False)
    assert ChromaConfig(url="http://localhost").port == 8000
    assert ChromaConfig(url="").url is None
    with pytest.raises(ValidationError, match=r"http://127\.0\.0\.1:8000"):
        ChromaConfig(url="127.0.0.1:8000")
    with pytest.raises(ValidationError, match="drop one"):
        ChromaConfig(url="http://127.0.0.1:8000", persist_dir=Path("/tmp/x"))
    with pytest.raises(ValidationError, match="only scheme://host:port"):
        ChromaConfig(url="http://127.0.0.1:8000/api/v2")
    with pytest.raises(ValidationError, match="invalid port"):
        ChromaConfig(url="http://127.0.0.1:99999")
    with pytest.raises(ValidationError, match="3-512 characters"):
        ChromaConfig(collection="a")
    with pytest.raises(ValidationError):
        ChromaConfig(distance="manhattan")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"url: .*not an http"):
        load_chroma_config(url="ftp://x")
    assert load_chroma_config(collection=None).collection == "finece_docs"
    with pytest.raises(ValidationError):
        cfg.collection = "changed"  # frozen


# ----------------------------------------------------------------------------- client/server


def test_server_mode_ingest_and_search(chroma_server: ChromaServer, emb: MiniLMEmbeddings) -> None:
    cfg = ChromaConfig(url=chroma_server.url, collection="science")
    store = open_vectorstore(cfg, emb)
    assert ingest(store, _docs(), batch_size=4) == 12
    _assert_search_works(store, emb)
    assert ingest(store, _docs()) == 0
    # a second client sees what the first stored (the data lives in the server)
    other = open_vectorstore(cfg, emb)
    assert len(other.get()["ids"]) == 12
    assert other.similarity_search(QUERIES[1][0], k=1)[0].metadata["topic"] == QUERIES[1][1]
    # the server, not this process, holds the data
    assert (Path(chroma_server.log).parent / "db").is_dir()


def test_server_lifecycle_bound_to_loopback_and_stopped_by_pid(tmp_path: Path) -> None:
    with run_chroma_server(tmp_path) as server:
        assert _group_alive(server.pid)
        addrs = _listen_addresses(server.port)
        if os.path.exists("/proc/net/tcp"):
            assert addrs == ["0100007F"], f"server listens on {addrs}, expected only 127.0.0.1"
        assert httpx.get(f"{server.url}/api/v2/heartbeat", timeout=5).status_code == 200
        assert server.startup_s < 60
    assert not _group_alive(server.pid), f"chroma server process group {server.pid} still alive after stop"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/api/v2/heartbeat", timeout=2)


def test_wrong_url_raises_backend_connection_error_quickly(emb: MiniLMEmbeddings) -> None:
    url = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    t0 = time.monotonic()
    with pytest.raises(BackendConnectionError) as info:
        open_vectorstore(ChromaConfig(url=url), emb)
    assert time.monotonic() - t0 < 3
    msg = str(info.value)
    assert url in msg and "chroma run --host 127.0.0.1 --port" in msg and "drop the URL" in msg

    # an address that never answers: bounded by connect_timeout_s, not a hang
    t0 = time.monotonic()
    with pytest.raises(BackendConnectionError, match=r"10\.255\.255\.1"):
        open_vectorstore(ChromaConfig(url="http://10.255.255.1:8000", connect_timeout_s=0.5), emb)
    assert time.monotonic() - t0 < 5


def test_url_of_something_else_is_not_taken_for_chroma(emb: MiniLMEmbeddings) -> None:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(404)
            self.end_headers()
            self.wfile.write(b"not here")

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        with pytest.raises(BackendConnectionError, match="HTTP 404"):
            open_vectorstore(ChromaConfig(url=url), emb)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
