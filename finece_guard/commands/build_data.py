"""``finece-guard build-data``: Monte-Carlo confidence data (paper Alg. 1) from the served generator.

It selects questions from a partition of one or more tasks, runs Alg. 1 per question against
the generator (the vLLM server by default, or in-process transformers) with offline MiniLM
embeddings for the fragment clustering, and appends one JSON line per finished question. A
re-run with the same settings continues where the last one stopped; ``--limit`` can grow
between runs. The summary shows the generations spent against k(1 + m·T) and the full tree.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from finece_guard.backends.model_store import ensure_default_model
from finece_guard.backends.openai_generator import OpenAICompatGenerator
from finece_guard.commands.common import console, fail, server_for
from finece_guard.config import load_settings
from finece_guard.data.choice_commit import ChoiceCommitter
from finece_guard.data.construction import (
    BuildReport,
    ConstructionConfig,
    MonteCarloSampler,
    QuestionData,
    TaskSpec,
    build_dataset,
    read_dataset,
    select_questions,
)
from finece_guard.data.records import QARecord
from finece_guard.errors import ConfigError, FineCEError

DEFAULT_TASKS = "sciq+passage,sciq,arc_easy,sciq_mc,csqa,triviaqa"


def _summary(out: Path, report: BuildReport) -> Table:
    data = read_dataset([out])
    table = Table(title=f"{out}  ({len(data)} questions)")
    for col in ("task", "questions", "states", "mean q-label", "generations", "k(1+Σm_t)", "k(1+mT)", "full tree"):
        table.add_column(col, justify="left" if col == "task" else "right")
    by_task: dict[str, list[QuestionData]] = {}
    for q in data:
        by_task.setdefault(q.task, []).append(q)
    for task, qs in sorted(by_task.items()):
        table.add_row(
            task,
            str(len(qs)),
            str(sum(len(q.states) for q in qs)),
            f"{sum(q.states[0].label for q in qs) / len(qs):.3f}",
            str(sum(q.generations for q in qs)),
            str(sum(q.expected_generations for q in qs)),
            str(sum(q.linear_bound for q in qs)),
            str(sum(q.full_tree for q in qs)),
        )
    return table


async def _run(
    questions: list[tuple[TaskSpec, QARecord]],
    out: Path,
    sampler: MonteCarloSampler,
    config: ConstructionConfig,
    meta: dict[str, object],
    concurrency: int,
    quiet: bool,
    committer: ChoiceCommitter | None = None,
) -> BuildReport:
    from finece_guard.embeddings import MiniLMEmbeddings

    embedder = MiniLMEmbeddings()
    await asyncio.to_thread(embedder.load)
    typed = list(questions)
    with Progress(
        TextColumn("[bold]build-data[/]"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(), TimeRemainingColumn(), console=console, disable=quiet,
    ) as progress:  # fmt: skip
        done_keys = {q.key for q in read_dataset([out])} if out.is_file() else set()
        already = sum(1 for s, r in typed if f"{s}:{r.id}" in done_keys)
        bar = progress.add_task("build", total=len(typed), completed=already, info="")
        gens = 0

        def on_done(data: QuestionData | None) -> None:
            nonlocal gens
            if data is not None:
                gens += data.generations
                info = f"{data.key[:40]} gens={data.generations}"
            else:
                info = "[red]a question failed (will be retried on the next run)[/]"
            progress.update(bar, advance=1, info=info)

        return await build_dataset(
            typed, out, sampler=sampler, embedder=embedder, config=config, meta=meta,
            concurrency=concurrency, on_done=on_done, committer=committer,
        )  # fmt: skip


def build_data(
    out: Annotated[Path, typer.Option(help="output JSONL (appended to; re-run to resume)")],
    tasks: Annotated[str, typer.Option(help="comma-separated task specs; 'sciq+passage' shows the passage")] = (
        DEFAULT_TASKS
    ),
    partition: Annotated[str, typer.Option(help="train | dev | test (train data comes from train)")] = "train",
    limit: Annotated[int | None, typer.Option(min=1, help="questions per task (default: all)")] = None,
    k: Annotated[int, typer.Option(min=1, help="samples per state (paper: 30)")] = 8,
    levels: Annotated[int, typer.Option(min=0, help="T: partial-answer levels")] = 2,
    threshold: Annotated[float, typer.Option(help="clustering cosine-distance threshold")] = 0.3,
    max_clusters: Annotated[int, typer.Option(min=1, help="cap on m, representatives per question")] = 3,
    temperature: Annotated[float, typer.Option(help="sampling temperature")] = 0.8,
    top_p: Annotated[float, typer.Option(help="nucleus sampling")] = 0.95,
    max_tokens: Annotated[int, typer.Option(min=1, help="answer / continuation length limit")] = 128,
    seed: Annotated[int, typer.Option(help="seed for question selection and per-request sampling")] = 0,
    concurrency: Annotated[int, typer.Option(min=1, help="questions in flight at once")] = 4,
    commit_choices: Annotated[
        bool, typer.Option(help="give each unreadable multiple-choice sample a constrained 'Answer: X' line")
    ] = False,
    backend: Annotated[str, typer.Option(help="vllm (served generator) | transformers (in-process)")] = "vllm",
    base_url: Annotated[str | None, typer.Option(help="existing server, e.g. http://127.0.0.1:8011/v1")] = None,
    quiet: Annotated[bool, typer.Option(help="no progress bar")] = False,
) -> None:
    """Build FineCE training data with Monte-Carlo sampling and fragment clustering (paper Alg. 1).

    Costs k(1 + m·T) generations per question. Reproducible given the same server, model and
    --seed (per-request seeds are derived from it).
    """
    try:
        specs = [TaskSpec.parse(t) for t in tasks.split(",") if t.strip()]
        if not specs:
            raise ConfigError("--tasks is empty; name at least one task, e.g. --tasks sciq+passage")
        if backend not in ("vllm", "transformers"):
            raise ConfigError(f"--backend {backend!r}: use vllm or transformers")
        config = ConstructionConfig(
            k=k, levels=levels, threshold=threshold, max_clusters=max_clusters, temperature=temperature,
            top_p=top_p, max_tokens=max_tokens, seed=seed, commit_choices=commit_choices,
        )  # fmt: skip
        questions = select_questions(specs, partition=partition, limit=limit, seed=seed)
        settings = load_settings()
        meta: dict[str, object] = {"partition": partition, "backend": backend}
        out.parent.mkdir(parents=True, exist_ok=True)
        if backend == "transformers":
            if commit_choices:
                raise ConfigError("--commit-choices needs the served generator (structured outputs): --backend vllm")
            from finece_guard.backends.transformers_generator import TransformersGenerator

            gen = TransformersGenerator(ensure_default_model(settings.home))
            meta["generator"] = "transformers:" + gen.device
            report = asyncio.run(_run(list(questions), out, gen, config, meta, concurrency, quiet))
        else:
            with server_for(settings, base_url, quiet) as url:
                meta["generator"] = settings.generator_model

                async def served() -> BuildReport:
                    client = OpenAICompatGenerator.from_settings(settings, url)
                    try:
                        return await _run(
                            list(questions), out, client, config, meta, concurrency, quiet, committer=client
                        )
                    finally:
                        await client.aclose()

                report = asyncio.run(served())
    except FineCEError as exc:
        raise fail(exc) from exc
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: finished questions are saved; re-run the same command to resume[/]")
        raise typer.Exit(code=130) from None
    console.print(_summary(out, report))
    console.print(
        f"this run: built {report.built}, already done {report.done_before}, failed {len(report.failed)}, "
        f"{report.generations} generations in {report.seconds:.0f} s"
    )
    for key, err in report.failed[:10]:
        console.print(f"  [red]failed[/] {key}: {err}")
    if report.failed:
        raise typer.Exit(code=1)
