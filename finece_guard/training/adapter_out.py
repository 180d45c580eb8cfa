"""Writing a trained adapter: its folder, written atomically, with the manifest and the training log.

The manifest (:class:`~finece_guard.adapters.AdapterManifest`) binds the adapter to its base model
(name and weight hash, computed exactly as the server does) and records data hashes, settings,
timings and dev metrics before (untrained LoRA = base model) and after training.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from peft import PeftModel

from finece_guard.adapters import MANIFEST, AdapterManifest
from finece_guard.errors import ConfigError, SetupError
from finece_guard.staging import staged_dir

TRAINING_LOG = "training_log.jsonl"


def check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MANIFEST).is_file())):
        raise ConfigError(
            f"--out {out} exists and is not a FineCE adapter folder; pick a new folder (an existing adapter "
            "folder, one with a finece_manifest.json, is replaced)."
        )


def write_adapter(
    model: PeftModel, out: Path, manifest: AdapterManifest, log_records: Sequence[dict[str, Any]], base_name: str
) -> None:
    out = out.expanduser().resolve()
    with staged_dir(out, ".train-") as tmp:
        model.peft_config["default"].base_model_name_or_path = base_name
        model.save_pretrained(str(tmp), save_embedding_layers=False)  # LoRA on attention only; no Hub lookup
        (tmp / "README.md").unlink(missing_ok=True)  # peft's model-card stub; the manifest documents the adapter
        if not (tmp / "adapter_model.safetensors").is_file():
            raise SetupError(f"peft did not write adapter_model.safetensors in {tmp}; is peft >= 0.17 installed?")
        with (tmp / TRAINING_LOG).open("w") as fh:
            for rec in log_records:
                fh.write(json.dumps(rec) + "\n")
        manifest.write(tmp)
