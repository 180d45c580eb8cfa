"""Know what the scorer talks to: read the server's ``/models`` and check the FineCE binding.

A wrong scorer fails silently otherwise: a typo in the adapter name gets vLLM's 404 that names
only the generator ("Valid aliases: smollm2-135m-instruct"); the *generator* used as scorer
returns plausible scores (≈ 0.5) from an instruction it was never trained on; a base URL without
``/v1`` gets ``{"detail":"Not Found"}``. So, once per scorer, before its first score:

1. ``GET {base_url}/models`` must be an OpenAI model list (else: the URL is wrong; a ``/v1``
   variant that works is suggested);
2. the scorer model must be listed (else: the served models, and the closest name, are named);
3. it must be a LoRA adapter (vLLM lists adapters with ``parent`` = the base model's served
   name and ``root`` = the adapter folder), not a base model;
4. its parent must be the generator in use (when the generator's name is known);
5. where the adapter folder and the base model folder are readable here (``root`` paths of a
   local server), the adapter's manifest must name that base model (:func:`check_binding`).

vLLM 0.32's entries look like ``{"id": "finece", "root": "/path/adapter", "parent":
"smollm2-135m-instruct", ...}`` for an adapter and ``{"id": "smollm2-135m-instruct", "root":
"/path/model", "parent": null, ...}`` for the base model. The parsing and checks are pure
functions of that body; :func:`verify_scorer` does the HTTP.
"""

from __future__ import annotations

import asyncio
import difflib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from finece_guard.adapters import MANIFEST, AdapterManifest, check_binding
from finece_guard.backends.http import OpenAIHTTP
from finece_guard.backends.model_store import STAMP
from finece_guard.errors import AdapterMismatchError, BackendHTTPError, ConfigError, FineCEError
from finece_guard.sync_bridge import run_sync

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServedModel:
    """One entry of ``/models``: a base model (``parent`` None) or a LoRA adapter of ``parent``."""

    id: str
    root: str | None = None
    parent: str | None = None

    @property
    def is_adapter(self) -> bool:
        return self.parent is not None


@dataclass(frozen=True)
class ScorerBinding:
    """What the check found: the scorer adapter, its base model, and the manifest when readable."""

    scorer: ServedModel
    base: ServedModel | None
    manifest: AdapterManifest | None


def parse_models(body: Any, shown_url: str) -> dict[str, ServedModel]:
    """The entries of a ``/models`` response by id; ConfigError if it is not an OpenAI model list."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list) or not all(isinstance(m, dict) and isinstance(m.get("id"), str) for m in data):
        raise ConfigError(
            f"{shown_url} is not an OpenAI-compatible model list (got {str(body)[:200]}). Point base_url at "
            "the server's API root, which for vLLM ends in /v1 (e.g. http://127.0.0.1:8011/v1), or pass "
            "verify=False for a server that cannot list its models."
        )
    out: dict[str, ServedModel] = {}
    for m in data:
        root, parent = m.get("root"), m.get("parent")
        out[m["id"]] = ServedModel(
            id=m["id"],
            root=root if isinstance(root, str) and root else None,
            parent=parent if isinstance(parent, str) and parent else None,
        )
    return out


def _listing(models: dict[str, ServedModel]) -> str:
    parts = [f"{m.id!r} (LoRA of {m.parent!r})" if m.is_adapter else f"{m.id!r} (base model)" for m in models.values()]
    return ", ".join(parts) or "nothing"


def check_scorer_entry(
    models: dict[str, ServedModel], scorer_model: str, generator_model: str | None, shown_url: str
) -> tuple[ServedModel, ServedModel | None]:
    """The scorer's entry and its base model's; raises when the scorer is not a LoRA of the generator."""
    adapters = [m.id for m in models.values() if m.is_adapter]
    entry = models.get(scorer_model)
    if entry is None:
        close = difflib.get_close_matches(scorer_model, list(models), n=1, cutoff=0.6)
        hint = f"Did you mean model={close[0]!r}? " if close else ""
        if adapters:
            use = f"Use one of the served adapters ({', '.join(repr(a) for a in adapters)})"
        else:
            use = "The server serves no LoRA adapter: start it with `finece-guard serve` (or --lora-modules finece=...)"
        raise ConfigError(
            f"scorer model {scorer_model!r} is not served at {shown_url}; it serves {_listing(models)}. "
            f"{hint}{use} as the scorer's model= (env FINECE_SCORER_MODEL)."
        )
    if not entry.is_adapter:
        use = (
            f"use the FineCE adapter instead: model={adapters[0]!r}"
            if adapters
            else "serve a FineCE adapter beside it (`finece-guard serve`) and use its name"
        )
        raise ConfigError(
            f"scorer model {scorer_model!r} at {shown_url} is a base model, not a FineCE LoRA adapter: its "
            f"scores would be the untrained base model's guesses. The server serves {_listing(models)}; {use}."
        )
    base = models.get(entry.parent or "")
    if generator_model is not None and entry.parent != generator_model:
        if generator_model not in models:
            raise ConfigError(
                f"generator model {generator_model!r} is not served at {shown_url}; it serves "
                f"{_listing(models)}. Set the generator's model= (env FINECE_GENERATOR_MODEL) to a served base model."
            )
        raise AdapterMismatchError(
            f"scorer adapter {scorer_model!r} at {shown_url} is a LoRA of {entry.parent!r}, but the generator is "
            f"{generator_model!r}: FineCE scores do not transfer across base models. Use an adapter trained "
            f"for {generator_model!r}, or generate with {entry.parent!r}."
        )
    return entry, base


def _stamped_sha(model_dir: Path) -> str | None:
    """The weight hash recorded by our model store, without hashing gigabytes of weights."""
    if not (model_dir / STAMP).is_file():
        return None
    from finece_guard.backends.model_store import weights_sha256

    return weights_sha256(model_dir)


def check_manifest(scorer: ServedModel, base: ServedModel | None) -> AdapterManifest | None:
    """The adapter's manifest checked against the served base model, where both folders are readable here.

    Returns None when that cannot be known (a remote server, a hub id instead of a folder, an
    adapter without a FineCE manifest). The base model's name is its folder name (as
    :func:`finece_guard.backends.stack.resolve_stack` names it); its weight hash is compared when
    the folder carries our model stamp.
    """
    if scorer.root is None or not (Path(scorer.root) / MANIFEST).is_file():
        if scorer.root is not None and Path(scorer.root).is_dir():
            log.warning("adapter %s has no %s; its base model cannot be checked", scorer.root, MANIFEST)
        return None
    adapter_dir = Path(scorer.root)
    manifest = AdapterManifest.read(adapter_dir)
    if base is None or base.root is None or not Path(base.root).is_dir():
        return manifest
    base_dir = Path(base.root)
    sha = _stamped_sha(base_dir)
    if sha is not None:
        return check_binding(adapter_dir, base_dir.name, sha)
    if manifest.base_model != base_dir.name:
        raise AdapterMismatchError(
            f"adapter {adapter_dir} was made for base model {manifest.base_model!r}, but the server serves "
            f"it on {base_dir.name!r} ({base_dir}). Serve the matching base model or use an adapter trained "
            "for this one."
        )
    return manifest


def _without_v1_hint(http: OpenAIHTTP) -> str:
    return (
        f"{http.safe_base_url}/models is not there (HTTP 404). Point base_url at the server's API root, which "
        "for vLLM ends in /v1 (e.g. http://127.0.0.1:8011/v1), or pass verify=False for a server that "
        "cannot list its models."
    )


async def _suggest_v1(http: OpenAIHTTP, timeout_s: float) -> str | None:
    """``base_url + '/v1'`` when that answers with a model list (the URL lacked ``/v1``)."""
    if http.base_url.endswith("/v1"):
        return None
    probe = OpenAIHTTP(
        http.url_for("/v1"), api_key=http.api_key, timeout_s=timeout_s, connect_timeout_s=timeout_s, retries=0,
        transport=http.transport,
    )  # fmt: skip
    try:
        parse_models(await probe.get_json("/models"), probe.shown("/models"))
    except FineCEError:  # not a model list, unreachable, HTTP error: no suggestion to make
        log.debug("no /v1 suggestion for %s", http.safe_base_url, exc_info=True)
        return None
    finally:
        await probe.aclose()
    return probe.safe_base_url


async def fetch_models(http: OpenAIHTTP, *, timeout_s: float) -> dict[str, ServedModel]:
    """``GET /models`` (timeouts, tenacity retries) parsed; a 404 says how to fix the URL."""
    shown = http.shown("/models")
    try:
        body = await http.get_json("/models", timeout_s=timeout_s)
    except BackendHTTPError as exc:
        if exc.status_code != 404:
            raise
        suggestion = await _suggest_v1(http, timeout_s)
        if suggestion is not None:
            raise ConfigError(
                f"base_url {http.safe_base_url!r} lacks the API root: {shown} is HTTP 404, but "
                f"{suggestion}/models lists the server's models. Use base_url={suggestion!r}."
            ) from None
        raise ConfigError(_without_v1_hint(http)) from None
    return parse_models(body, shown)


async def verify_scorer(
    http: OpenAIHTTP, scorer_model: str, generator_model: str | None, *, timeout_s: float
) -> ScorerBinding:
    """Fetch ``/models`` once and run every check above; the manifest is read off the event loop."""
    models = await fetch_models(http, timeout_s=timeout_s)
    entry, base = check_scorer_entry(models, scorer_model, generator_model, http.safe_base_url)
    manifest = await asyncio.to_thread(check_manifest, entry, base)
    return ScorerBinding(scorer=entry, base=base, manifest=manifest)


def server_models(
    base_url: str, *, api_key: str = "EMPTY", timeout_s: float = 10.0, transport: httpx.AsyncBaseTransport | None = None
) -> dict[str, ServedModel]:
    """The server's ``/models`` entries by id, one blocking GET with the package's HTTP client.

    The API key is sent and a query in ``base_url`` is kept (``/v1?key=...`` asks ``/v1/models?key=...``).
    A 401/403 is a ConfigError about the key, an unreachable server a BackendConnectionError, a
    404 a ConfigError about the URL. Call it before the event loop, or through ``asyncio.to_thread``.
    """
    http = OpenAIHTTP(
        base_url, api_key=api_key, timeout_s=timeout_s, connect_timeout_s=timeout_s, retries=1, transport=transport
    )

    async def fetch() -> dict[str, ServedModel]:
        try:
            return await fetch_models(http, timeout_s=timeout_s)
        except BackendHTTPError as exc:
            if exc.status_code not in (401, 403):
                raise
            raise ConfigError(
                f"{http.shown('/models')} refused the API key (HTTP {exc.status_code}): the server is up but wants "
                "another key; set FINECE_API_KEY (or --api-key) to the key the server was started with"
            ) from exc
        finally:
            await http.aclose()

    return run_sync(fetch())
