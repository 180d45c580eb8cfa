"""FineCE adapter folders: the manifest that binds an adapter to its base model.

A FineCE adapter only makes sense for the base model it was trained on (paper RQ5: cross-family
transfer fails), so every adapter folder carries ``finece_manifest.json`` with the base model's
name and weight hash, whether it is trained, and (once trained) its data and metrics.
:func:`check_binding` refuses an adapter made for another base model.

Until a trained adapter exists, :func:`ensure_untrained_adapter` writes a freshly initialised
LoRA of the right shape (PEFT's default init: A random, B zero, so it equals the base model).
Its manifest says ``"trained": false`` and the server says so loudly.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from finece_guard.errors import AdapterMismatchError, SetupError
from finece_guard.staging import staged_dir

MANIFEST = "finece_manifest.json"
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")


@dataclass(frozen=True)
class AdapterManifest:
    """What an adapter is, and which base model it belongs to."""

    base_model: str
    base_model_sha256: str
    trained: bool
    rank: int = 8
    alpha: int = 16
    target_modules: tuple[str, ...] = LORA_TARGETS
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def write(self, folder: Path) -> None:
        (folder / MANIFEST).write_text(json.dumps(asdict(self), indent=2, sort_keys=True))

    @classmethod
    def read(cls, folder: Path) -> AdapterManifest:
        path = folder / MANIFEST
        if not path.is_file():
            raise SetupError(
                f"{folder} has no {MANIFEST}; a FineCE adapter must say which base model it was "
                "trained for (train it with `finece-guard train`, or write the manifest)."
            )
        try:
            data = json.loads(path.read_text())
            data["target_modules"] = tuple(data.get("target_modules", LORA_TARGETS))
            return cls(**data)
        except (ValueError, TypeError) as exc:
            raise SetupError(f"{path} is not a valid adapter manifest: {exc}") from exc


def check_binding(adapter: Path, base_model: str, base_sha256: str) -> AdapterManifest:
    """Return the adapter's manifest, or raise if it was made for a different base model."""
    manifest = AdapterManifest.read(adapter)
    if manifest.base_model != base_model or manifest.base_model_sha256 != base_sha256:
        raise AdapterMismatchError(
            f"adapter {adapter} was made for base model {manifest.base_model!r} "
            f"(weights {manifest.base_model_sha256[:12]}), but the server would serve "
            f"{base_model!r} (weights {base_sha256[:12]}). Serve the matching base model or use an "
            "adapter trained for this one."
        )
    return manifest


def _model_dims(model_dir: Path) -> tuple[int, int, int, int]:
    cfg = json.loads((model_dir / "config.json").read_text())
    hidden = int(cfg["hidden_size"])
    heads = int(cfg["num_attention_heads"])
    kv = int(cfg.get("num_key_value_heads", heads))
    head_dim = int(cfg.get("head_dim") or hidden // heads)
    return hidden, head_dim * heads, head_dim * kv, int(cfg["num_hidden_layers"])


def ensure_untrained_adapter(
    model_dir: Path, out_dir: Path, *, base_model: str, base_sha256: str, rank: int = 8, seed: int = 0
) -> Path:
    """A freshly initialised (untrained) LoRA for ``model_dir`` at ``out_dir``; reused if present."""
    if (out_dir / MANIFEST).is_file() and (out_dir / "adapter_model.safetensors").is_file():
        return out_dir
    try:
        import torch
        from safetensors.torch import save_file
    except ImportError as exc:
        raise SetupError("writing a LoRA adapter needs torch and safetensors (run `make setup`)") from exc
    hidden, q_out, kv_out, layers = _model_dims(model_dir)
    outs = {"q_proj": q_out, "k_proj": kv_out, "v_proj": kv_out, "o_proj": hidden}
    ins = {"q_proj": hidden, "k_proj": hidden, "v_proj": hidden, "o_proj": q_out}
    gen = torch.Generator().manual_seed(seed)
    tensors: dict[str, torch.Tensor] = {}
    for layer in range(layers):
        for mod in LORA_TARGETS:
            stem = f"base_model.model.model.layers.{layer}.self_attn.{mod}"
            bound = 1.0 / ins[mod] ** 0.5  # kaiming-uniform(a=sqrt(5)) bound, as PEFT/nn.Linear
            a = (torch.rand(rank, ins[mod], generator=gen) * 2 - 1) * bound
            tensors[f"{stem}.lora_A.weight"] = a.contiguous()
            tensors[f"{stem}.lora_B.weight"] = torch.zeros(outs[mod], rank)
    config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_model,
        "r": rank,
        "lora_alpha": 2 * rank,
        "lora_dropout": 0.0,
        "bias": "none",
        "target_modules": list(LORA_TARGETS),
        "fan_in_fan_out": False,
        "inference_mode": True,
        "modules_to_save": None,
    }
    with staged_dir(out_dir, ".adapter-") as tmp:
        save_file(tensors, str(tmp / "adapter_model.safetensors"))
        (tmp / "adapter_config.json").write_text(json.dumps(config, indent=2))
        AdapterManifest(
            base_model=base_model,
            base_model_sha256=base_sha256,
            trained=False,
            rank=rank,
            alpha=2 * rank,
            note="UNTRAINED: freshly initialised LoRA (B = 0), scores equal the prompted base model.",
        ).write(tmp)
    return out_dir
