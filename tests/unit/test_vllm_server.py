"""The vLLM command line is derived from the adapter: rank and target modules (no server needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finece_guard.backends.vllm_server import ServeSpec, adapter_shape, build_command, vllm_lora_rank
from finece_guard.errors import ConfigError


def _adapter(tmp_path: Path, **cfg: object) -> Path:
    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps(cfg))
    return folder


def _flag(cmd: list[str], name: str) -> list[str]:
    i = cmd.index(name)
    out = []
    for arg in cmd[i + 1 :]:
        if arg.startswith("--"):
            break
        out.append(arg)
    return out


def test_command_restricts_lora_to_the_adapters_modules_and_rank(tmp_path: Path) -> None:
    adapter = _adapter(tmp_path, r=4, target_modules=["q_proj", "v_proj"])
    spec = ServeSpec(model_dir=tmp_path, served_name="gen", python=Path("/py"), adapter_dir=adapter, port=9)
    cmd = build_command(spec)
    assert _flag(cmd, "--max-lora-rank") == ["8"]  # 4 rounded up to a rank vLLM accepts
    assert _flag(cmd, "--lora-target-modules") == ["q_proj", "v_proj"]
    assert _flag(cmd, "--lora-modules") == [f"finece={adapter}"]
    assert _flag(cmd, "--host") == ["127.0.0.1"]


def test_rank_pattern_and_regex_targets(tmp_path: Path) -> None:
    adapter = _adapter(tmp_path, r=8, rank_pattern={"o_proj": 24}, target_modules=".*proj")
    assert adapter_shape(adapter) == (24, ())
    cmd = build_command(ServeSpec(model_dir=tmp_path, served_name="g", python=Path("/py"), adapter_dir=adapter))
    assert _flag(cmd, "--max-lora-rank") == ["32"]
    assert "--lora-target-modules" not in cmd  # a regex cannot be passed through


def test_no_adapter_no_lora_flags(tmp_path: Path) -> None:
    cmd = build_command(ServeSpec(model_dir=tmp_path, served_name="g", python=Path("/py")))
    assert "--enable-lora" not in cmd and "--lora-target-modules" not in cmd


def test_rank_limits() -> None:
    assert [vllm_lora_rank(r) for r in (1, 2, 8, 9, 300, 512)] == [1, 8, 8, 16, 320, 512]
    with pytest.raises(ConfigError, match="exceeds"):
        vllm_lora_rank(1024)


def test_unreadable_adapter_config(tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "adapter_config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not a readable PEFT adapter config"):
        adapter_shape(folder)


def test_chunked_prefill_off_by_default_so_seeded_requests_cannot_crash_vllm_cpu(tmp_path: Path) -> None:
    default = ServeSpec(model_dir=tmp_path, served_name="g", python=Path("/p"))
    assert "--no-enable-chunked-prefill" in build_command(default)
    spec = ServeSpec(model_dir=tmp_path, served_name="g", python=Path("/p"), chunked_prefill=True)
    assert "--no-enable-chunked-prefill" not in build_command(spec)
