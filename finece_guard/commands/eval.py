"""``finece-guard eval``: FineCE against baselines on the same greedy answers, as the paper's tables.

It selects questions from a partition of one or more tasks (the same seeded selection as
``build-data``), runs the harness (:mod:`finece_guard.evaluation.harness`) against the served
generator and FineCE adapter with bounded concurrency and a progress bar, appending one JSON line
per answer to ``--out/records-<partition>.jsonl`` (re-run to resume), then writes
``report.json``, ``report.md`` and PNG figures (:mod:`finece_guard.evaluation.report`).

``--fit-recalibration`` first runs the same pipeline on the dev partition, fits an isotonic (or
Platt) map of the full-answer FineCE score to correctness, saves it next to the adapter (or at
``--recalibration-out``) and reports ECE before/after on the evaluated partition. Without it, a
``recalibration.json`` already next to the adapter is reported the same way.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from finece_guard.backends.openai_scorer import OpenAICompatScorer
from finece_guard.backends.recalibration import (
    RECALIBRATION_FILE,
    IsotonicRecalibrator,
    PlattRecalibrator,
    Recalibrator,
    recalibrator_for_adapter,
)
from finece_guard.backends.served_models import server_models
from finece_guard.backends.stack import untrained_adapter
from finece_guard.commands.common import console, fail, server_for
from finece_guard.config import FineCESettings, load_settings
from finece_guard.data.construction import TaskSpec, select_questions
from finece_guard.data.records import QARecord
from finece_guard.errors import ConfigError, FineCEError
from finece_guard.evaluation.compare import comparison_section, rescore_records
from finece_guard.evaluation.generator import ServedEvalGenerator
from finece_guard.evaluation.harness import EvalRunReport, run_eval
from finece_guard.evaluation.markdown import fmt_cell
from finece_guard.evaluation.records import AnswerRecord, question_key, read_records, records_path
from finece_guard.evaluation.report import adapter_info, build_report, machine_info, write_report
from finece_guard.evaluation.settings import DEFAULT_STRATEGIES, EvalConfig
from finece_guard.evaluation.tables import FINECE_FULL

DEFAULT_EVAL_TASKS = "arc_easy,sciq"


def _progress(quiet: bool) -> Progress:
    return Progress(
        TextColumn("[bold]eval {task.description}[/]"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(), console=console, disable=quiet,
    )  # fmt: skip


async def _run_partition(
    progress: Progress,
    questions: Sequence[tuple[TaskSpec, QARecord]],
    out_file: Path,
    *,
    url: str,
    settings: FineCESettings,
    config: EvalConfig,
    meta: dict[str, Any],
    concurrency: int,
) -> EvalRunReport:
    generator = ServedEvalGenerator.from_settings(
        settings, url, top_logprobs=config.top_logprobs, timeout_s=max(settings.generation_timeout_s, 300.0)
    )
    scorer = OpenAICompatScorer.from_settings(settings, url)  # raw scores: recalibration is applied in the report
    done = {r.key for r in read_records(out_file)}
    already = sum(1 for s, r in questions if question_key(s, r) in done)
    bar = progress.add_task(config.partition, total=len(questions), completed=already, info="")

    def on_done(rec: AnswerRecord | None) -> None:
        if rec is None:
            info = "[red]a question failed (retried on the next run)[/]"
        else:
            info = escape(f"{rec.key[:40]} {'✓' if rec.correct else '✗'} full={rec.full_score:.2f}")
        progress.update(bar, advance=1, info=info)

    try:
        return await run_eval(
            questions, out_file, generator=generator, scorer=scorer, config=config, meta=meta,
            concurrency=concurrency, on_done=on_done,
        )  # fmt: skip
    finally:
        await generator.aclose()
        await scorer.aclose()


def _fit(kind: str, records: Sequence[AnswerRecord]) -> Recalibrator:
    recal: Recalibrator = IsotonicRecalibrator() if kind == "isotonic" else PlattRecalibrator()
    if not records:
        raise ConfigError("no dev answers to fit the recalibrator on; raise --dev-limit")
    try:
        return recal.fit([r.full_score for r in records], [int(r.correct) for r in records])
    except FineCEError as exc:
        raise ConfigError(f"{exc}. Evaluate more dev questions (--dev-limit) so both outcomes occur.") from exc


def _summary(report: dict[str, Any]) -> Table:
    table = Table(title="Table I (ECE / AUROC with 95% bootstrap intervals)")
    for col in ("task", "n", "accuracy", "method", "ECE", "AUROC"):
        table.add_column(col)
    for group, t1 in report["table1"].items():
        first = True
        for method, m in t1["methods"].items():
            if method.startswith("FineCE") or method in ("P(True)", "Self-consistency", "Mean token prob"):
                cells = [
                    group if first else "",
                    str(t1["n"]) if first else "",
                    fmt_cell(t1["accuracy"]) if first else "",
                    method,
                    fmt_cell(m["ece"]),
                    fmt_cell(m["auroc"]),
                ]
                table.add_row(*(escape(c) for c in cells))  # fmt: skip
                first = False
    return table


def eval_command(
    out: Annotated[Path, typer.Option(help="output folder: records-<partition>.jsonl (re-run to resume), report")],
    tasks: Annotated[str, typer.Option(help="comma-separated task specs; 'sciq+passage' shows the passage")] = (
        DEFAULT_EVAL_TASKS
    ),
    partition: Annotated[str, typer.Option(help="partition to evaluate: test (default) | dev | train")] = "test",
    limit: Annotated[int | None, typer.Option(min=1, help="questions per task (default: all)")] = None,
    max_tokens: Annotated[int, typer.Option(min=1, help="answer length limit (greedy)")] = 200,
    strategies: Annotated[str, typer.Option(help="checkpoint strategies: paragraph, periodic:N, entropy:T")] = (
        ",".join(DEFAULT_STRATEGIES)
    ),
    sc_n: Annotated[int, typer.Option(min=0, help="self-consistency samples per question (0 disables)")] = 5,
    lookahead_w: Annotated[int, typer.Option(min=0, help="BCI look-ahead width w at p(1) (0: off; expensive)")] = 0,
    lookahead_d: Annotated[int, typer.Option(min=0, help="BCI look-ahead depth d in paragraphs (0: off)")] = 0,
    alpha: Annotated[float | None, typer.Option(help="BCI α (default: settings, FINECE_BCI_ALPHA)")] = None,
    window: Annotated[int | None, typer.Option(help="BCI window w (default: settings, FINECE_BCI_WINDOW)")] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="questions in flight at once")] = 4,
    seed: Annotated[int, typer.Option(help="seed for question selection and sampled requests")] = 0,
    commit_choices: Annotated[
        bool, typer.Option(help="give each unreadable multiple-choice answer a constrained 'Answer: X' line")
    ] = False,
    fit_recalibration: Annotated[bool, typer.Option(help="fit a recalibrator on the dev partition first")] = False,
    recalibration: Annotated[str, typer.Option(help="recalibrator kind: isotonic | platt")] = "isotonic",
    recalibration_out: Annotated[
        Path | None, typer.Option(help=f"where to save it (default: <adapter>/{RECALIBRATION_FILE})")
    ] = None,
    dev_limit: Annotated[int | None, typer.Option(min=1, help="dev questions per task to fit on (default --limit)")] = (
        None
    ),
    target_precision: Annotated[float, typer.Option(help="precision the suggested accept threshold must reach")] = 0.8,
    max_correct_lost: Annotated[
        float, typer.Option(help="share of correct answers the suggested abort threshold may abort")
    ] = 0.05,
    token_savings: Annotated[
        float, typer.Option(help="share of generated tokens the second abort suggestion must save")
    ] = 0.1,
    bootstrap: Annotated[int, typer.Option(min=10, help="bootstrap resamples per interval")] = 1000,
    compare_adapter: Annotated[
        str | None,
        typer.Option(
            help="re-score the same answers with this adapter folder ('untrained': the untrained LoRA) "
            "on a server started for it, and compare"
        ),
    ] = None,
    compare_strategy: Annotated[str | None, typer.Option(help="strategy whose p(1) is compared (default: first)")] = (
        None
    ),
    no_plots: Annotated[bool, typer.Option("--no-plots", help="skip the PNG figures")] = False,
    base_url: Annotated[str | None, typer.Option(help="existing server, e.g. http://127.0.0.1:8011/v1")] = None,
    quiet: Annotated[bool, typer.Option(help="no progress bar")] = False,
) -> None:
    """Evaluate FineCE (question / checkpoints / full answer, raw and BCI) against baselines on the same answers.

    Writes Table I/II/IV-shaped Markdown + JSON, threshold suggestions and figures to --out.
    """
    t_start = time.perf_counter()
    command = shlex.join(["finece-guard", *sys.argv[1:]])
    try:
        specs = [TaskSpec.parse(t) for t in tasks.split(",") if t.strip()]
        if not specs:
            raise ConfigError("--tasks is empty; name at least one task, e.g. --tasks arc_easy,sciq")
        if recalibration not in ("isotonic", "platt"):
            raise ConfigError(f"--recalibration {recalibration!r}: use isotonic or platt")
        if fit_recalibration and partition == "dev":
            raise ConfigError("--fit-recalibration fits on dev; evaluate another partition (--partition test)")
        if not 0.0 < target_precision <= 1.0 or not 0.0 <= max_correct_lost <= 1.0 or not 0 < token_savings <= 1:
            raise ConfigError(
                "--target-precision and --token-savings must be in (0, 1] and --max-correct-lost in [0, 1]"
            )
        settings = load_settings(bci_alpha=alpha, bci_window=window)
        if compare_adapter is not None and compare_adapter != "untrained":
            _reference_path(compare_adapter, settings)  # a bad path fails now, not after the evaluation
        config = EvalConfig(
            partition=partition, max_tokens=max_tokens,
            strategies=tuple(s.strip() for s in strategies.split(",") if s.strip()),
            alpha=settings.bci_alpha, window=settings.bci_window, sc_n=sc_n,
            lookahead_w=lookahead_w, lookahead_d=lookahead_d, top_logprobs=settings.top_logprobs, seed=seed,
            commit_choices=commit_choices,
        )  # fmt: skip
        if compare_strategy is not None and compare_strategy not in config.strategies:
            raise ConfigError(f"--compare-strategy {compare_strategy!r} is not one of --strategies {strategies!r}")
        questions = select_questions(specs, partition=partition, limit=limit, seed=seed)
        out.mkdir(parents=True, exist_ok=True)
        recal: Recalibrator | None = None
        recal_source: dict[str, Any] = {}
        failed = 0
        failures: list[tuple[str, str]] = []
        with server_for(settings, base_url, quiet) as url:
            models = server_models(url, api_key=settings.api_key)
            missing = [m for m in (settings.generator_model, settings.scorer_model) if m not in models]
            if missing:
                raise ConfigError(
                    f"the server at {url} does not serve {', '.join(map(repr, missing))} (it serves "
                    f"{', '.join(sorted(models)) or 'nothing'}); set FINECE_GENERATOR_MODEL / FINECE_SCORER_MODEL "
                    "to its names, or serve the FineCE stack with `finece-guard serve`"
                )
            adapter_path = models[settings.scorer_model].root
            adapter = adapter_info(adapter_path)
            meta = {
                "generator_model": settings.generator_model,
                "scorer_model": settings.scorer_model,
                "adapter": adapter_path,
            }
            with _progress(quiet) as progress:
                if fit_recalibration:
                    dev_config = dataclasses.replace(config, partition="dev")
                    dev_questions = select_questions(specs, partition="dev", limit=dev_limit or limit, seed=seed)
                    dev_file = records_path(out, "dev")
                    dev_run = asyncio.run(_run_partition(
                        progress, dev_questions, dev_file, url=url, settings=settings, config=dev_config, meta=meta,
                        concurrency=concurrency,
                    ))  # fmt: skip
                    failed += len(dev_run.failed)
                    failures += dev_run.failed
                    dev_records = read_records(dev_file, [question_key(s, r) for s, r in dev_questions])
                    recal = _fit(recalibration, dev_records)
                    target = recalibration_out or _adapter_target(adapter)
                    saved = recal.save(target)
                    recal_source = {"path": str(saved), "fitted_on": f"dev ({len(dev_records)} answers, this run)"}
                elif adapter["on_this_machine"] and adapter_path is not None:
                    recal = recalibrator_for_adapter(adapter_path)
                    if recal is not None:
                        recal_source = {"path": str(Path(adapter_path) / RECALIBRATION_FILE),
                                        "fitted_on": "an earlier run (found next to the adapter)"}  # fmt: skip
                test_file = records_path(out, partition)
                run = asyncio.run(_run_partition(
                    progress, questions, test_file, url=url, settings=settings, config=config, meta=meta,
                    concurrency=concurrency,
                ))  # fmt: skip
                failed += len(run.failed)
                failures += run.failed
        for key, err in failures[:10]:
            console.print(f"  [red]failed[/] {escape(key)}: {escape(err)}")
        records = read_records(test_file, [question_key(s, r) for s, r in questions])
        if not records:
            raise ConfigError(
                f"none of the {len(questions)} selected questions has been evaluated ({failed} failed this run; "
                "see above). Check the server, then re-run the same command to resume."
            )
        comparison = None
        if compare_adapter is not None:
            ref_records, ref_failed = _rescore(records, compare_adapter, out, settings, config, concurrency, quiet)
            failed += len(ref_failed)
            failures += ref_failed
            comparison = comparison_section(
                records, ref_records, reference_label=_reference_label(compare_adapter),
                strategy=compare_strategy or config.strategies[0], n_resamples=bootstrap, seed=seed,
            )  # fmt: skip
        info = {
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "command": command,
            "server_url": url,
            "generator_model": settings.generator_model,
            "generator_path": models[settings.generator_model].root,
            "scorer_model": settings.scorer_model,
            "adapter": adapter,
            "machine": machine_info(),
            "wall_time_s": time.perf_counter() - t_start,
            "failed": failed,
            "selected_questions": len(questions),
            "concurrency": concurrency,
        }
        report = build_report(
            records, config=config, info=info, recalibrator=recal, recalibration_source=recal_source,
            n_resamples=bootstrap, seed=seed, target_precision=target_precision, max_correct_lost=max_correct_lost,
            token_savings=token_savings, comparison=comparison,
        )  # fmt: skip
        files = write_report(report, records, out, recalibrator=recal, plots=not no_plots)
    except FineCEError as exc:
        raise fail(exc) from exc
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: finished answers are saved; re-run the same command to resume[/]")
        raise typer.Exit(code=130) from None
    console.print(_summary(report))
    for w in report["warnings"]:
        console.print(f"[yellow]warning:[/] {escape(w)}")
    if recal is not None and report["recalibration"]:
        pooled = report["recalibration"]["groups"]
        g = pooled.get("all") or next(iter(pooled.values()))
        console.print(
            f"recalibration ({recal.kind}): {FINECE_FULL} ECE {fmt_cell(g['before']['ece'])} -> "
            f"{fmt_cell(g['after']['ece'])}  ({recal_source.get('path')})",
            markup=False,
        )
    console.print(f"{len(records)} of {len(questions)} questions evaluated; {failed} failed this run"
                  f"{' (re-run to retry them)' if failed else ''}")  # fmt: skip
    console.print("wrote " + ", ".join(str(f) for f in files), markup=False)
    if failed:
        raise typer.Exit(code=1)


def _reference_label(compare_adapter: str) -> str:
    if compare_adapter == "untrained":
        return "the untrained LoRA (zero-initialised B: the base model prompted with the FineCE instruction)"
    return f"adapter {compare_adapter}"


def _reference_path(compare_adapter: str, settings: FineCESettings) -> Path:
    if compare_adapter == "untrained":
        return untrained_adapter(settings)
    ref_path = Path(compare_adapter).expanduser().resolve()
    if not (ref_path / "adapter_config.json").is_file():
        raise ConfigError(
            f"--compare-adapter {compare_adapter}: no adapter_config.json there; pass a LoRA folder "
            "(e.g. one written by `finece-guard train`) or 'untrained'"
        )
    return ref_path


def _rescore(
    records: Sequence[AnswerRecord],
    compare_adapter: str,
    out: Path,
    settings: FineCESettings,
    config: EvalConfig,
    concurrency: int,
    quiet: bool,
) -> tuple[list[AnswerRecord], list[tuple[str, str]]]:
    """Re-score ``records`` with the reference adapter on a server started for it (journaled, resumable)."""
    ref_path = _reference_path(compare_adapter, settings)
    label = "untrained" if compare_adapter == "untrained" else ref_path.name
    ref_file = out / f"records-{config.partition}.rescored-{label}.jsonl"
    meta = {"reference_adapter": str(ref_path), "source": str(records_path(out, config.partition))}
    with server_for(settings, None, quiet, adapter=ref_path) as url, _progress(quiet) as progress:
        scorer = OpenAICompatScorer.from_settings(settings, url)
        bar = progress.add_task(f"re-score ({label})", total=len(records), info="")

        def on_done(rec: AnswerRecord | None) -> None:
            progress.update(bar, advance=1, info="" if rec is not None else "[red]a record failed[/]")

        async def go() -> EvalRunReport:
            try:
                return await rescore_records(
                    records, ref_file, scorer=scorer, alpha=config.alpha, window=config.window, meta=meta,
                    concurrency=concurrency, on_done=on_done,
                )  # fmt: skip
            finally:
                await scorer.aclose()

        run = asyncio.run(go())
    return read_records(ref_file, [r.key for r in records]), run.failed


def _adapter_target(adapter: dict[str, Any]) -> Path:
    path = adapter.get("path")
    if path is None or not adapter.get("on_this_machine"):
        raise ConfigError(
            f"cannot save the recalibrator next to the adapter: its folder {path!r} is not on this machine; "
            "pass --recalibration-out PATH"
        )
    return Path(path) / RECALIBRATION_FILE
