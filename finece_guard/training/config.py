"""Training settings and the base model an adapter is trained on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from finece_guard.backends.model_store import DEFAULT_MODEL_NAME, ensure_default_model, weights_sha256
from finece_guard.data.forgery import FORGERY_SETS
from finece_guard.errors import ConfigError

DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class TrainConfig:
    """Training settings (defaults: LoRA r=8/α=16 on q,k,v,o; AdamW 1e-4, 10% warm-up, linear decay)."""

    epochs: float = 2.0
    max_steps: int | None = None
    lr: float = 1e-4
    batch_size: int = 4
    grad_accum: int = 1
    max_length: int = 512
    warmup_ratio: float = 0.1
    lora_rank: int = 8
    lora_dropout: float = 0.05
    seed: int = 0
    device: str = "auto"
    dev_fraction: float = 0.1
    eval_batch_size: int = 8
    logging_steps: int = 1
    #: forged-confidence twins per partial / complete training state (0 = no augmentation)
    forgery_rate: float = 0.0
    #: which payloads the twins carry: "fixed" (the train half of the payload set) or "varied" (plus
    #: generated keyword x number-format wordings; see finece_guard.data.forgery.varied_train_payloads)
    forgery_set: str = "fixed"
    #: batches of similar-length prompts (less padding per step); order is still seeded-random
    group_by_length: bool = False
    #: bfloat16 autocast on CPU (needs avx512_bf16 / AMX to be fast); LoRA weights stay float32
    bf16: bool = False
    #: warm start: continue training this FineCE adapter folder (same base model and rank) instead of a fresh LoRA;
    #: the "before" dev metrics are then that adapter's, on the same dev states
    init_adapter: str | None = None
    #: stop after this many minutes of optimizer steps (the adapter is still written); None = no limit
    max_minutes: float | None = None
    #: stop at this optimizer step, keeping the schedule planned for ``epochs`` (reproduces a run that
    #: ``max_minutes`` stopped); None = no such stop
    stop_at_step: int | None = None

    def __post_init__(self) -> None:
        checks: list[tuple[bool, str]] = [
            (self.epochs > 0, f"epochs={self.epochs} must be positive"),
            (self.max_steps is None or self.max_steps >= 1, f"max_steps={self.max_steps} must be at least 1"),
            (0.0 < self.lr < 1.0, f"lr={self.lr} must be in (0, 1) (1e-4 is typical for LoRA)"),
            (self.batch_size >= 1, f"batch_size={self.batch_size} must be at least 1"),
            (self.grad_accum >= 1, f"grad_accum={self.grad_accum} must be at least 1"),
            (self.max_length >= 32, f"max_length={self.max_length} is too short for the scorer prompt (use >= 256)"),
            (0.0 <= self.warmup_ratio < 1.0, f"warmup_ratio={self.warmup_ratio} must be in [0, 1)"),
            (self.lora_rank >= 1, f"lora_rank={self.lora_rank} must be at least 1 (8 is the default)"),
            (0.0 <= self.lora_dropout < 1.0, f"lora_dropout={self.lora_dropout} must be in [0, 1)"),
            (self.device in DEVICES, f"device={self.device!r}: use one of {', '.join(DEVICES)}"),
            (0.0 <= self.dev_fraction < 1.0, f"dev_fraction={self.dev_fraction} must be in [0, 1)"),
            (self.eval_batch_size >= 1, f"eval_batch_size={self.eval_batch_size} must be at least 1"),
            (self.logging_steps >= 1, f"logging_steps={self.logging_steps} must be at least 1"),
            (0.0 <= self.forgery_rate <= 16.0, f"forgery_rate={self.forgery_rate} must be in [0, 16] (0 = off)"),
            (self.forgery_set in FORGERY_SETS, f"forgery_set={self.forgery_set!r}: use one of {FORGERY_SETS}"),
            (self.max_minutes is None or self.max_minutes > 0, f"max_minutes={self.max_minutes} must be positive"),
            (self.stop_at_step is None or self.stop_at_step >= 1, f"stop_at_step={self.stop_at_step} must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    @property
    def lora_alpha(self) -> int:
        """α = 2r, as the untrained adapter and the manifest default."""
        return 2 * self.lora_rank

    def resolve_device(self) -> str:
        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ConfigError("--device cuda, but torch sees no CUDA GPU; use --device cpu (or auto)")
        return self.device


@dataclass(frozen=True)
class BaseModel:
    """The model folder the adapter is trained on, named and hashed as the server names and hashes it."""

    folder: Path
    name: str
    sha256: str


def resolve_base_model(model: Path | None, home: Path) -> BaseModel:
    """``model`` (an HF folder) or the embedded default, exactly as :func:`resolve_stack` resolves it."""
    if model is None:
        folder = ensure_default_model(home)
        name = DEFAULT_MODEL_NAME
    else:
        folder = model.expanduser().resolve()
        if not (folder / "config.json").is_file():
            raise ConfigError(
                f"--model {model} is not a Hugging Face model folder (no config.json). Pass a folder with "
                "config.json and safetensors weights, or omit --model for the embedded default."
            )
        name = folder.name
    return BaseModel(folder=folder, name=name, sha256=weights_sha256(folder))
