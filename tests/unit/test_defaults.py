"""One source of defaults: every constructor default that has a settings field reads that field.

``FineCESettings`` (``finece_guard/config.py``) is where defaults live. A constructor argument that
mirrors a settings field defaults to that field's default, and ``from_settings`` (written once, in
``config.FromSettings``) passes every mapped field. The last test edits one default in a copy of
the package's config.py and sees it in every constructor.
"""

from __future__ import annotations

import inspect
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import finece_guard
from finece_guard.backends.openai_generator import OpenAICompatGenerator
from finece_guard.backends.openai_scorer import OpenAICompatScorer
from finece_guard.config import FineCESettings, FromSettings, load_settings, setting_default
from finece_guard.evaluation.settings import EvalConfig

#: (callable, argument, settings field): arguments whose default must be the field's default
MIRRORED: list[tuple[Any, str, str]] = [
    *[(OpenAICompatGenerator, arg, field) for arg, field in OpenAICompatGenerator.SETTINGS.items() if arg != "model"],
    *[(OpenAICompatScorer, arg, field) for arg, field in OpenAICompatScorer.SETTINGS.items()
      if arg != "generator_model"],  # None: any served base model (from_settings passes the configured one)
    (EvalConfig, "top_logprobs", "top_logprobs"),
    (EvalConfig, "alpha", "bci_alpha"),
    (EvalConfig, "window", "bci_window"),
]  # fmt: skip


@pytest.mark.parametrize(("target", "arg", "field"), MIRRORED, ids=lambda x: getattr(x, "__name__", str(x)))
def test_constructor_defaults_are_the_settings_defaults(target: Any, arg: str, field: str) -> None:
    assert inspect.signature(target).parameters[arg].default == setting_default(field)


def _changed(field: str) -> object:
    """A valid non-default value of ``field``."""
    default = setting_default(field)
    if isinstance(default, bool):
        return not default
    if isinstance(default, int):
        return default - 1 if default > 1 else default + 1
    if isinstance(default, float):
        return default / 2
    return f"changed-{field}"


@pytest.mark.parametrize("cls", [OpenAICompatGenerator, OpenAICompatScorer])
def test_from_settings_passes_every_mapped_field(cls: type[FromSettings]) -> None:
    changed = {field: _changed(field) for field in cls.SETTINGS.values()}
    settings = load_settings(**changed)
    obj: Any = cls.from_settings(settings, "http://127.0.0.1:9/v1")
    seen = {
        "model": obj.model, "api_key": obj.http.api_key, "top_logprobs": obj.top_logprobs,
        "timeout_s": obj.http.timeout.read, "connect_timeout_s": obj.http.timeout.connect, "retries": obj.http.retries,
        "max_concurrency": obj.http.max_concurrency, "priority": obj.priority,
        "min_mass": getattr(obj, "min_mass", None), "verify": getattr(obj, "verify", None),
        "generator_model": getattr(obj, "generator_model", None),
        "verify_timeout_s": getattr(obj, "verify_timeout_s", None),
        "strip_rater_text": getattr(obj, "strip_rater_text", None),
    }  # fmt: skip
    for arg, field in cls.SETTINGS.items():
        assert seen[arg] == changed[field], (arg, field)
    assert cls.from_settings(settings, "http://127.0.0.1:9/v1", retries=0).http.retries == 0  # type: ignore[attr-defined]


def test_every_mapped_field_exists() -> None:
    for cls in (OpenAICompatGenerator, OpenAICompatScorer):
        assert set(cls.SETTINGS.values()) <= set(FineCESettings.model_fields), cls


def test_runtime_deadlines_are_the_settings_default() -> None:
    from finece_guard.runtime.guard import FineCEGuard
    from finece_guard.runtime.handler import FineCECallbackHandler
    from finece_guard.runtime.middleware import FineCEMiddleware
    from finece_guard.runtime.monitor import RunMonitor, stream_with_confidence

    for target in (FineCEGuard, FineCECallbackHandler, FineCEMiddleware, RunMonitor, stream_with_confidence):
        params = inspect.signature(target).parameters
        assert params["deadline_s"].default == setting_default("score_deadline_s"), target
        assert params["alpha"].default == setting_default("bci_alpha"), target
        assert params["window"].default == setting_default("bci_window"), target


def test_changing_a_default_in_config_changes_it_everywhere(tmp_path: Path) -> None:
    package = Path(finece_guard.__file__).parent
    copy = tmp_path / "finece_guard"
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("adapters_data", "__pycache__"))
    config = copy / "config.py"
    text = config.read_text(encoding="utf-8")
    edits = {"retries: int = Field(default=3,": "retries: int = Field(default=7,",
             "top_logprobs: int = Field(default=20,": "top_logprobs: int = Field(default=13,"}  # fmt: skip
    for old, new in edits.items():
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    config.write_text(text, encoding="utf-8")
    probe = (
        "import finece_guard as f\n"
        "from finece_guard.backends.openai_generator import OpenAICompatGenerator as G\n"
        "from finece_guard.backends.openai_scorer import OpenAICompatScorer as S\n"
        "from finece_guard.evaluation.settings import EvalConfig as E\n"
        "from finece_guard.config import load_settings\n"
        f"assert f.__file__.startswith({str(tmp_path)!r}), f.__file__\n"
        "s = S('http://127.0.0.1:9/v1')\n"
        "g = G('http://127.0.0.1:9/v1', model='m')\n"
        "assert (g.http.retries, s.http.retries, load_settings().retries) == (7, 7, 7)\n"
        "assert (s.top_logprobs, E().top_logprobs, S.from_settings(load_settings(), 'http://x/v1').top_logprobs) "
        "== (13, 13, 13)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
