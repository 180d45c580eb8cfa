"""Resolve what to serve: model folder, FineCE adapter, interpreter -> a :class:`ServeSpec`.

Shared by ``finece-guard serve``, ``ask``/``demo`` (when they start a server themselves) and
the integration-test fixture, so all of them serve exactly the same stack. With no model given,
the embedded default (SmolLM2-135M-Instruct from PyPI) is converted once and used; with no
adapter given, the committed trained adapter for that base model is used when one exists, else
a freshly initialised (untrained) LoRA is written and flagged.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from finece_guard.adapters import AdapterManifest, check_binding, ensure_untrained_adapter
from finece_guard.backends.model_store import DEFAULT_MODEL_NAME, ensure_default_model, weights_sha256
from finece_guard.backends.vllm_server import ServeSpec
from finece_guard.config import FineCESettings
from finece_guard.errors import ConfigError


@dataclass(frozen=True)
class Stack:
    """A serve spec plus what the user should be told about it."""

    spec: ServeSpec
    base_model: str
    manifest: AdapterManifest

    @property
    def adapter_trained(self) -> bool:
        return self.manifest.trained


def bundled_adapter(base_model: str) -> Path | None:
    """A trained adapter shipped inside the package for ``base_model``, if any."""
    root = resources.files("finece_guard") / "adapters_data" / base_model
    path = Path(str(root))
    return path if (path / "adapter_config.json").is_file() else None


def _untrained(settings: FineCESettings, model_dir: Path, base_name: str, base_sha: str) -> Path:
    return ensure_untrained_adapter(
        model_dir, settings.home / "adapters" / f"untrained-{base_name}-{base_sha[:12]}",
        base_model=base_name, base_sha256=base_sha,
    )  # fmt: skip


def untrained_adapter(settings: FineCESettings) -> Path:
    """The untrained (freshly initialised) LoRA for the embedded default model, created once.

    The reference a trained adapter is compared against: with zero-initialised B matrices it
    scores exactly like the base model prompted with the FineCE instruction.
    """
    model_dir = ensure_default_model(settings.home)
    return _untrained(settings, model_dir, DEFAULT_MODEL_NAME, weights_sha256(model_dir))


def resolve_stack(
    settings: FineCESettings,
    *,
    model: Path | None = None,
    adapter: Path | None = None,
    served_name: str | None = None,
    port: int | None = None,
    extra_args: tuple[str, ...] = (),
) -> Stack:
    """Everything needed to start the server, validated, with the adapter bound to its model."""
    python = settings.resolve_vllm_python()  # fail fast, before any conversion work
    if model is None:
        model_dir = ensure_default_model(settings.home)
        base_name = DEFAULT_MODEL_NAME
    else:
        model_dir = model.expanduser().resolve()
        if not (model_dir / "config.json").is_file():
            raise ConfigError(
                f"--model {model} is not a Hugging Face model folder (no config.json). Pass a folder "
                "with config.json and safetensors weights, or omit --model for the embedded default."
            )
        base_name = model_dir.name
    base_sha = weights_sha256(model_dir)
    if adapter is None:
        adapter = bundled_adapter(base_name)
    if adapter is None:
        adapter = _untrained(settings, model_dir, base_name, base_sha)
    adapter = adapter.expanduser().resolve()
    manifest = check_binding(adapter, base_name, base_sha)
    spec = ServeSpec(
        model_dir=model_dir,
        served_name=served_name or settings.generator_model,
        python=python,
        adapter_dir=adapter,
        adapter_name=settings.scorer_model,
        host=settings.host,
        port=port or settings.port,
        max_model_len=settings.max_model_len,
        dtype=settings.dtype,
        scheduling_policy=settings.scheduling_policy,
        max_logprobs=20,
        extra_args=extra_args,
    )
    return Stack(spec=spec, base_model=base_name, manifest=manifest)
