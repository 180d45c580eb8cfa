"""Passage retrieval for low-confidence regeneration: a Chroma vector store through langchain-chroma.

When a guarded answer scores low, the guard retrieves supporting passages and regenerates. This
module opens the store and fills it:

* :class:`ChromaConfig` says *where* the store lives: an embedded ``chromadb.PersistentClient``
  folder (default ``$FINECE_HOME/chroma``) or a Chroma server in client/server mode (``url``, e.g.
  ``http://127.0.0.1:8000``, started with ``chroma run --host 127.0.0.1 --port 8000 --path DIR``),
  plus the collection name and its distance (``cosine`` by default, the natural choice for the
  unit-length MiniLM vectors).
* :func:`open_vectorstore` returns a ``langchain_chroma.Chroma`` on the right client, embedding
  with :class:`~finece_guard.embeddings.MiniLMEmbeddings` (offline) unless told otherwise. A server
  URL is checked with a short heartbeat first, so a wrong URL fails fast with
  :class:`~finece_guard.errors.BackendConnectionError` instead of hanging.
* :func:`ingest` adds documents idempotently: every document gets a stable id (the one given, its
  ``Document.id``, or the sha1 of its text), ids already in the collection are skipped before
  anything is embedded, and the number of *new* documents is returned.
* :func:`retrieved_ids` reads the ids back from retrieved documents (langchain-chroma 1.x sets
  ``Document.id`` on search results).

The distance is set both as collection configuration (``{"hnsw": {"space": ...}}``, read by
langchain-chroma's relevance-score function) and as the legacy ``{"hnsw:space": ...}`` metadata;
chromadb cannot change the distance of an existing collection, so a mismatch is reported as a
:class:`~finece_guard.errors.ConfigError` rather than silently ignored.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import httpx
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from finece_guard.errors import BackendConnectionError, ConfigError, SetupError

if TYPE_CHECKING:
    from langchain_chroma import Chroma

__all__ = [
    "ChromaConfig",
    "Distance",
    "document_id",
    "ingest",
    "load_chroma_config",
    "open_vectorstore",
    "retrieved_ids",
]

Distance = Literal["cosine", "l2", "ip"]
_RAG_HINT = "pip install 'finece-guard[rag]' (or run `make setup`)"
# chromadb's rule for collection names
_COLLECTION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,510}[A-Za-z0-9]$")


class ChromaConfig(BaseModel):
    """Where the Chroma collection lives and how it measures distance.

    Exactly one of ``persist_dir`` (embedded store in that folder) and ``url`` (a Chroma server)
    may be set; with neither, the embedded store lives under ``$FINECE_HOME/chroma``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    collection: str = "finece_docs"
    persist_dir: Path | None = Field(default=None, description="embedded store folder (PersistentClient)")
    url: str | None = Field(default=None, description="Chroma server, e.g. http://127.0.0.1:8000 (HttpClient)")
    distance: Distance = "cosine"
    connect_timeout_s: float = Field(default=5.0, gt=0, description="heartbeat timeout when connecting to url")

    @field_validator("collection")
    @classmethod
    def _collection_name(cls, v: str) -> str:
        if not _COLLECTION_RE.match(v) or ".." in v:
            raise ValueError(
                f"{v!r} is not a valid Chroma collection name: use 3-512 characters from [A-Za-z0-9._-], "
                "starting and ending with a letter or digit, without '..' (e.g. 'finece_docs')"
            )
        return v

    @field_validator("persist_dir")
    @classmethod
    def _persist_dir(cls, v: Path | None) -> Path | None:
        if v is None or str(v) == "":
            return None
        return v.expanduser()

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is None or v.strip() == "":
            return None
        v = v.strip().rstrip("/")
        example = "use e.g. http://127.0.0.1:8000"
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"{v!r} is not an http(s) URL; {example}")
        if not parts.hostname:
            raise ValueError(f"{v!r} has no host; {example}")
        try:
            _ = parts.port
        except ValueError as exc:
            raise ValueError(f"{v!r} has an invalid port ({exc}); {example}") from exc
        if parts.path not in ("", "/"):
            raise ValueError(
                f"{v!r} has a path ({parts.path!r}); give only scheme://host:port, the client adds /api/v2 itself"
            )
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError(f"{v!r} carries a query, fragment or credentials; give only scheme://host:port")
        return v

    @model_validator(mode="after")
    def _one_location(self) -> ChromaConfig:
        if self.persist_dir is not None and self.url is not None:
            raise ValueError(
                "set either persist_dir (embedded store) or url (Chroma server), not both; drop one of them"
            )
        return self

    @property
    def host(self) -> str | None:
        """Host name of ``url`` (None in embedded mode)."""
        return urlsplit(self.url).hostname if self.url else None

    @property
    def port(self) -> int | None:
        """Port of ``url``: explicit, else 443 for https and 8000 (Chroma's default) for http."""
        if not self.url:
            return None
        parts = urlsplit(self.url)
        return parts.port or (443 if parts.scheme == "https" else 8000)

    @property
    def ssl(self) -> bool:
        """True for an https ``url``."""
        return bool(self.url) and urlsplit(self.url or "").scheme == "https"

    def resolve_persist_dir(self, home: Path | None = None) -> Path:
        """The embedded store folder: ``persist_dir``, else ``<home>/chroma`` (home: ``$FINECE_HOME``)."""
        if self.persist_dir is not None:
            return self.persist_dir
        if home is None:
            from finece_guard.config import load_settings

            home = load_settings().home
        return Path(home).expanduser() / "chroma"


def load_chroma_config(**values: Any) -> ChromaConfig:
    """A :class:`ChromaConfig` from keyword values (None means default); errors become ConfigError."""
    clean = {k: v for k, v in values.items() if v is not None}
    try:
        return ChromaConfig(**clean)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"]) or "config"
            lines.append(f"  {name}: {err['msg']} (got {err.get('input')!r})")
        raise ConfigError("invalid Chroma settings:\n" + "\n".join(lines)) from exc


def _server_down(config: ChromaConfig, reason: str) -> BackendConnectionError:
    return BackendConnectionError(
        f"cannot reach the Chroma server at {config.url} ({reason}). Start one with "
        f"`chroma run --host {config.host} --port {config.port} --path DIR` (the `chroma` command comes with "
        "chromadb, e.g. .venv/bin/chroma), fix the URL, or drop the URL to use the embedded store "
        "under $FINECE_HOME/chroma."
    )


def _check_server(config: ChromaConfig) -> None:
    """GET /api/v2/heartbeat with a short timeout; any failure -> BackendConnectionError."""
    url = f"{config.url}/api/v2/heartbeat"
    try:
        resp = httpx.get(url, timeout=config.connect_timeout_s)
    except httpx.TimeoutException as exc:
        raise _server_down(config, f"no answer within {config.connect_timeout_s:g} s") from exc
    except httpx.HTTPError as exc:
        raise _server_down(config, f"{type(exc).__name__}: {exc}") from exc
    if resp.status_code != 200 or "heartbeat" not in resp.text:
        raise _server_down(
            config, f"GET {url} answered HTTP {resp.status_code}, not a Chroma >= 1.0 heartbeat: {resp.text[:200]!r}"
        )


def _collection_space(configuration: Any) -> str | None:
    for index in ("hnsw", "spann"):
        section = configuration.get(index) if isinstance(configuration, dict) else None
        if isinstance(section, dict) and section.get("space"):
            return str(section["space"])
    return None


def open_vectorstore(
    config: ChromaConfig | None = None,
    embeddings: Embeddings | None = None,
    *,
    home: Path | None = None,
) -> Chroma:
    """A ``langchain_chroma.Chroma`` for ``config`` (default: embedded store under ``$FINECE_HOME/chroma``).

    Args:
        config: where the collection lives; ``ChromaConfig()`` if omitted.
        embeddings: embedding function; :class:`MiniLMEmbeddings` (offline) if omitted.
        home: base folder for the default embedded store instead of ``$FINECE_HOME``.

    Raises:
        BackendConnectionError: ``config.url`` is set and no Chroma server answers there.
        ConfigError: the folder cannot be created, or the existing collection uses another distance.
        SetupError: chromadb / langchain-chroma are not installed.
    """
    config = config or ChromaConfig()
    try:
        import chromadb
        from chromadb.config import Settings
        from langchain_chroma import Chroma
    except ImportError as exc:
        raise SetupError(f"retrieval needs chromadb and langchain-chroma: {_RAG_HINT}") from exc
    if embeddings is None:
        from finece_guard.embeddings import MiniLMEmbeddings

        embeddings = MiniLMEmbeddings()

    settings = Settings(anonymized_telemetry=False)
    metadata: dict[str, Any] = {"hnsw:space": config.distance}
    configuration: Any = {"hnsw": {"space": config.distance}}
    client: Any
    if config.url is not None:
        where = config.url
        _check_server(config)
        try:
            client = chromadb.HttpClient(
                host=config.host or "", port=config.port or 8000, ssl=config.ssl, settings=settings
            )
            collection = client.get_or_create_collection(
                name=config.collection, embedding_function=None, metadata=metadata, configuration=configuration
            )
        except httpx.TransportError as exc:
            raise _server_down(config, f"{type(exc).__name__}: {exc}") from exc
        except ValueError as exc:  # chromadb reports a refused connection as ValueError
            if "connect" not in str(exc).lower():
                raise
            raise _server_down(config, str(exc)) from exc
    else:
        path = config.resolve_persist_dir(home)
        where = str(path)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"cannot create the Chroma folder {path} ({exc}); set persist_dir (or FINECE_HOME) to a writable folder"
            ) from exc
        client = chromadb.PersistentClient(path=str(path), settings=settings)
        collection = client.get_or_create_collection(
            name=config.collection, embedding_function=None, metadata=metadata, configuration=configuration
        )

    # configuration_json is the raw stored form; .configuration warns about the "legacy" (None) embedding function
    raw = getattr(collection, "configuration_json", None)
    actual = _collection_space(raw if isinstance(raw, dict) else collection.configuration)
    if actual is not None and actual != config.distance:
        raise ConfigError(
            f"collection {config.collection!r} at {where} already uses distance {actual!r}, not "
            f"{config.distance!r}; Chroma cannot change it: set distance={actual!r} or use another collection name"
        )
    # the relevance function langchain-chroma would derive from the collection, given directly (no extra lookup)
    relevance = {
        "cosine": Chroma._cosine_relevance_score_fn,
        "l2": Chroma._euclidean_relevance_score_fn,
        "ip": Chroma._max_inner_product_relevance_score_fn,
    }[config.distance]
    return Chroma(
        collection_name=config.collection,
        embedding_function=embeddings,
        client=client,
        collection_metadata=metadata,
        collection_configuration=configuration,
        relevance_score_fn=relevance,
    )


def document_id(text: str) -> str:
    """The stable id of a passage: sha1 (hex) of its UTF-8 text."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


@contextlib.contextmanager
def _progress_bar(enabled: bool, total: int) -> Iterator[Callable[[int], None]]:
    if not enabled:
        yield lambda _n: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("[bold]ingest[/bold]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    ) as bar:
        task = bar.add_task("ingest", total=total)
        yield lambda n: bar.advance(task, n)


def ingest(
    store: Chroma,
    documents: Iterable[Document],
    *,
    ids: Sequence[str] | None = None,
    batch_size: int = 64,
    progress: bool = False,
) -> int:
    """Add ``documents`` to ``store`` unless already there; returns how many were new.

    Ids are ``ids`` when given (one per document), else each document's ``Document.id``, else
    :func:`document_id` of its text, so ingesting the same documents again adds nothing. Within
    one call, later documents with an id already seen are dropped. Per batch of ``batch_size``,
    ids already in the collection are looked up first and only the rest are embedded and added.
    ``progress=True`` shows a rich progress bar on stderr.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, e.g. 64 (got {batch_size!r})")
    docs = list(documents)
    if ids is not None:
        if isinstance(ids, str):
            raise ConfigError("ids must be a sequence of strings, one per document, not a single string")
        id_list = [str(i) for i in ids]
        if len(id_list) != len(docs):
            raise ConfigError(f"got {len(id_list)} ids for {len(docs)} documents; give one id per document or none")
    else:
        id_list = [d.id if d.id else document_id(d.page_content) for d in docs]
    if any(not i for i in id_list):
        raise ConfigError("document ids must be non-empty strings")

    seen: set[str] = set()
    pairs: list[tuple[str, Document]] = []
    for doc_id, doc in zip(id_list, docs, strict=True):
        if doc_id not in seen:
            seen.add(doc_id)
            pairs.append((doc_id, doc))

    added = 0
    try:
        with _progress_bar(progress, len(pairs)) as advance:
            for start in range(0, len(pairs), batch_size):
                chunk = pairs[start : start + batch_size]
                present = set(store.get(ids=[i for i, _ in chunk], include=[])["ids"])
                fresh = [(i, d) for i, d in chunk if i not in present]
                if fresh:
                    store.add_documents(
                        [Document(page_content=d.page_content, metadata=dict(d.metadata)) for _, d in fresh],
                        ids=[i for i, _ in fresh],
                    )
                    added += len(fresh)
                advance(len(chunk))
    except httpx.TransportError as exc:
        raise BackendConnectionError(
            f"lost the Chroma server while ingesting ({type(exc).__name__}: {exc}); "
            f"{added} new documents were stored before the failure, re-run ingest to add the rest"
        ) from exc
    return added


def retrieved_ids(docs: Iterable[Document]) -> list[str]:
    """The ids of retrieved documents, in order (langchain-chroma sets ``Document.id`` on results)."""
    out: list[str] = []
    for pos, doc in enumerate(docs):
        if not doc.id:
            raise ConfigError(
                f"document {pos} has no id; pass documents returned by the vector store "
                "(langchain-chroma >= 0.2 sets Document.id on search results)"
            )
        out.append(doc.id)
    return out
