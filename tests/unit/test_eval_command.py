"""`finece-guard eval` end to end with a fake server: records, report, recalibration fit and reuse."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from finece_guard.adapters import AdapterManifest
from finece_guard.backends.recalibration import RECALIBRATION_FILE, load_recalibrator
from finece_guard.backends.served_models import ServedModel
from finece_guard.commands import eval as eval_cmd
from finece_guard.data.construction import TaskSpec
from finece_guard.data.records import QARecord
from finece_guard.errors import ConfigError
from tests.unit.test_eval_harness import ANSWER, CountingScorer, FakeGenerator, mc_record


class _Generator(FakeGenerator):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__({"Question number": ANSWER})  # every answer ends "Answer: A"

    @classmethod
    def from_settings(cls, *args: Any, **kwargs: Any) -> _Generator:
        return cls()

    async def aclose(self) -> None:
        return None


class _Scorer(CountingScorer):
    @classmethod
    def from_settings(cls, *args: Any, **kwargs: Any) -> _Scorer:
        return cls()

    async def aclose(self) -> None:
        return None


def _questions(specs: Any, *, partition: str, limit: int | None, seed: int) -> list[tuple[TaskSpec, QARecord]]:
    offset = 100 if partition == "dev" else 0
    n = limit or 6
    return [(TaskSpec("arc_easy"), mc_record(offset + i, "A" if i % 2 else "B")) for i in range(n)]


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[typer.Typer, Path]:
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    AdapterManifest(base_model="m", base_model_sha256="0" * 64, trained=True).write(adapter)
    models = {"smollm2-135m-instruct": ServedModel("smollm2-135m-instruct", "/models/smol"),
              "finece": ServedModel("finece", str(adapter), "smollm2-135m-instruct")}  # fmt: skip
    monkeypatch.setattr(eval_cmd, "ServedEvalGenerator", _Generator)
    monkeypatch.setattr(eval_cmd, "OpenAICompatScorer", _Scorer)
    monkeypatch.setattr(eval_cmd, "select_questions", _questions)
    monkeypatch.setattr(eval_cmd, "server_models", lambda url, api_key: models)
    cli = typer.Typer()
    cli.command("eval")(eval_cmd.eval_command)
    cli.command("noop")(lambda: None)  # two commands: "eval" stays a sub-command name
    return cli, adapter


def test_eval_command_fits_saves_and_reuses_recalibration(app: tuple[typer.Typer, Path], tmp_path: Path) -> None:
    cli, adapter = app
    out = tmp_path / "out"
    args = ["eval", "--out", str(out), "--tasks", "arc_easy", "--limit", "6", "--sc-n", "2", "--bootstrap", "50",
            "--base-url", "http://fake/v1", "--quiet", "--no-plots"]  # fmt: skip
    result = CliRunner().invoke(cli, [*args, "--fit-recalibration"])
    assert result.exit_code == 0, result.output
    assert len((out / "records-dev.jsonl").read_text().splitlines()) == 6
    assert len((out / "records-test.jsonl").read_text().splitlines()) == 6
    assert load_recalibrator(adapter / RECALIBRATION_FILE).n_fit == 6
    report = json.loads((out / "report.json").read_text())
    assert report["run"]["adapter"]["trained"] is True and report["run"]["server_url"] == "http://fake/v1"
    assert report["run"]["n_per_task"] == {"arc_easy": 6}
    recal = report["recalibration"]
    assert recal["path"] == str(adapter / RECALIBRATION_FILE) and "dev" in recal["fitted_on"]
    assert set(recal["groups"]["arc_easy"]) == {"before", "after"}
    assert "FineCE (full, recalibrated)" in report["table1"]["arc_easy"]["methods"]
    assert "## Recalibration" in (out / "report.md").read_text()

    # a second run resumes (nothing new to evaluate) and finds the saved recalibrator next to the adapter
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "6 of 6 questions evaluated; 0 failed" in result.output
    report = json.loads((out / "report.json").read_text())
    assert "found next to the adapter" in report["recalibration"]["fitted_on"]


def test_eval_command_refuses_fit_on_dev(app: tuple[typer.Typer, Path], tmp_path: Path) -> None:
    cli, _ = app
    result = CliRunner().invoke(
        cli,
        [
            "eval",
            "--out",
            str(tmp_path / "o"),
            "--partition",
            "dev",
            "--fit-recalibration",
            "--base-url",
            "http://f/v1",
        ],
    )
    assert result.exit_code == 2
    assert "evaluate another partition" in " ".join(result.output.split())


def test_eval_command_single_class_dev_says_how_to_fix(
    app: tuple[typer.Typer, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli, _ = app
    monkeypatch.setattr(
        eval_cmd, "select_questions",
        lambda specs, *, partition, limit, seed: [(TaskSpec("arc_easy"), mc_record(i)) for i in range(3)],
    )  # fmt: skip
    result = CliRunner().invoke(
        cli, ["eval", "--out", str(tmp_path / "o"), "--fit-recalibration", "--sc-n", "0", "--base-url", "http://f/v1",
              "--quiet", "--no-plots"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "--dev-limit" in " ".join(result.output.split())


def test_eval_command_checks_served_models(
    app: tuple[typer.Typer, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli, _ = app
    monkeypatch.setattr(eval_cmd, "server_models", lambda url, api_key: {"other-model": ServedModel("other-model")})
    result = CliRunner().invoke(cli, ["eval", "--out", str(tmp_path / "o"), "--base-url", "http://f/v1", "--quiet"])
    assert result.exit_code == 2
    assert "does not serve 'smollm2-135m-instruct', 'finece'" in " ".join(result.output.split())


def test_server_models_unreachable() -> None:
    from finece_guard.backends.served_models import server_models
    from finece_guard.errors import BackendConnectionError

    with pytest.raises(BackendConnectionError, match="Is the vLLM server running"):
        server_models("http://127.0.0.1:9/v1", timeout_s=1.0)


def test_server_models_sends_the_key_keeps_the_query_and_names_a_401() -> None:
    import httpx

    from finece_guard.backends.served_models import server_models

    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.headers.get("authorization") != "Bearer right":
            return httpx.Response(401, json={"error": "unauthorized"})
        return httpx.Response(200, json={"data": [{"id": "finece", "root": "/a", "parent": "smol"}]})

    transport = httpx.MockTransport(handler)
    models = server_models("http://srv/v1?tenant=t1", api_key="right", transport=transport)
    assert models["finece"].root == "/a" and models["finece"].parent == "smol"
    assert str(seen[0].url) == "http://srv/v1/models?tenant=t1"
    with pytest.raises(ConfigError, match="refused the API key") as info:
        server_models("http://srv/v1", api_key="wrong", transport=transport)
    assert "wrong" not in str(info.value) and "server up?" not in str(info.value)


def test_eval_command_compares_with_a_reference_adapter_on_the_same_answers(
    app: tuple[typer.Typer, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import contextlib
    from collections.abc import Iterator

    cli, _ = app
    ref = tmp_path / "ref-adapter"
    ref.mkdir()
    (ref / "adapter_config.json").write_text("{}")
    started: list[Any] = []

    @contextlib.contextmanager
    def fake_server(settings: Any, base_url: Any, quiet: bool, *, adapter: Path | None = None) -> Iterator[str]:
        started.append((base_url, adapter))
        yield "http://fake-ref/v1"

    monkeypatch.setattr(eval_cmd, "server_for", fake_server)
    out = tmp_path / "out"
    args = ["eval", "--out", str(out), "--tasks", "arc_easy", "--limit", "6", "--sc-n", "0", "--bootstrap", "50",
            "--base-url", "http://fake/v1", "--quiet", "--no-plots", "--compare-adapter", str(ref)]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    # the evaluation used the given server; the reference got a server of its own, serving it
    assert started == [("http://fake/v1", None), (None, ref.resolve())]
    rescored = out / "records-test.rescored-ref-adapter.jsonl"
    assert len(rescored.read_text().splitlines()) == 6
    report = json.loads((out / "report.json").read_text())
    comp = report["adapter_comparison"]
    assert comp["n_compared"] == 6 and comp["strategy"] == "paragraph"
    assert "This adapter vs a reference adapter" in (out / "report.md").read_text()


def test_eval_command_bad_compare_adapter_fails_early(app: tuple[typer.Typer, Path], tmp_path: Path) -> None:
    cli, _ = app
    out = tmp_path / "o"
    result = CliRunner().invoke(cli, ["eval", "--out", str(out), "--base-url", "http://f/v1", "--quiet",
                                      "--compare-adapter", str(tmp_path / "nope")])  # fmt: skip
    assert result.exit_code == 2
    assert "no adapter_config.json there" in " ".join(result.output.split())
    assert not (out / "records-test.jsonl").exists()
