"""``finece-guard train``: fit the FineCE LoRA adapter on Monte-Carlo data from ``build-data``.

The base model is resolved like ``serve`` resolves it (``--model`` folder, else the embedded
SmolLM2), so the manifest's base-model name and weight hash are the ones ``serve`` checks the
adapter against. Torch, transformers and peft are imported only when the command runs, so the
rest of the CLI starts fast and works without the ``training`` extra.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from finece_guard.commands.common import console, fail
from finece_guard.config import load_settings
from finece_guard.errors import FineCEError
from finece_guard.types import CheckpointKind


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def _metrics_table(before: dict[str, Any], after: dict[str, Any]) -> Table:
    """Dev metrics per kind, one row before (untrained LoRA = base model) and one after training."""
    title = "dev metrics (before = untrained LoRA = base model, or the --init-adapter)"
    table = Table(title=title, box=box.SIMPLE_HEAD, padding=(0, 1))
    table.add_column("dev states", no_wrap=True)
    for col in ("label", "pred", "brier~", "digits", "ECE", "AUROC", "Brier"):
        table.add_column(col, justify="right", min_width=6)
    keys = ("mean_prediction", "brier_soft", "digit_mass", "ece", "auroc", "brier")
    by_b, by_a = before.get("by_kind", {}), after.get("by_kind", {})
    kinds = [("all", before, after)] + [
        (k.value, by_b.get(k.value, {}), by_a[k.value]) for k in CheckpointKind if k.value in by_a
    ]
    for kind, b, a in kinds:
        final = "ece" in a
        for when, m in (("before", b), ("after", a)):  # before: the untrained LoRA (= base model)
            values = [_fmt(m.get(k)) if final or k not in ("ece", "auroc", "brier") else "" for k in keys]
            name = f"{kind} ({m.get('n_states', 0)})" if when == "before" else "  → trained"
            table.add_row(name, _fmt(m.get("mean_label")), *values, style="dim" if when == "before" else None)
    table.caption = "brier~: against the soft Monte-Carlo label; digits: probability mass on the ten digit tokens"
    return table


def train(
    data: Annotated[list[Path], typer.Argument(help="JSONL files written by `finece-guard build-data`")],
    out: Annotated[Path, typer.Option(help="adapter folder to write (an existing adapter folder is replaced)")],
    model: Annotated[
        Path | None, typer.Option(help="HF base model folder (default: embedded SmolLM2-135M-Instruct, as `serve`)")
    ] = None,
    dev_data: Annotated[
        list[Path] | None, typer.Option("--dev-data", help="dev JSONL instead of a hash split, repeatable")
    ] = None,
    dev_fraction: Annotated[float, typer.Option(help="share of questions held out for dev (by question)")] = 0.1,
    epochs: Annotated[float, typer.Option(help="passes over the training states")] = 2.0,
    max_steps: Annotated[int | None, typer.Option(min=1, help="stop after this many optimizer steps")] = None,
    lr: Annotated[float, typer.Option(help="AdamW learning rate")] = 1e-4,
    batch_size: Annotated[int, typer.Option(min=1, help="states per step")] = 4,
    grad_accum: Annotated[int, typer.Option(min=1, help="gradient accumulation steps")] = 1,
    max_length: Annotated[int, typer.Option(min=32, help="token limit; longer answers are cut (start kept)")] = 512,
    warmup_ratio: Annotated[float, typer.Option(help="share of steps for linear warm-up")] = 0.1,
    lora_rank: Annotated[int, typer.Option(min=1, help="LoRA rank r (alpha = 2r)")] = 8,
    seed: Annotated[int, typer.Option(help="seed for LoRA init and data order")] = 0,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda")] = "auto",
    forgery_rate: Annotated[
        float, typer.Option(help="forged-confidence twins per answer state, same label (0 = no augmentation)")
    ] = 0.0,
    forgery_set: Annotated[
        str, typer.Option(help="payloads the twins carry: fixed (the train payloads) or varied (+ generated wordings)")
    ] = "fixed",
    group_by_length: Annotated[bool, typer.Option(help="batch similar-length prompts (less padding)")] = False,
    bf16: Annotated[bool, typer.Option(help="bfloat16 autocast on CPU (fast with avx512_bf16 / AMX)")] = False,
    max_minutes: Annotated[
        float | None, typer.Option(help="stop training after this many minutes of steps (adapter still written)")
    ] = None,
    init_adapter: Annotated[
        Path | None, typer.Option(help="continue training this adapter (same base, same rank) instead of a new LoRA")
    ] = None,
    stop_at_step: Annotated[
        int | None,
        typer.Option(help="stop at this step, schedule planned for --epochs (reproduces a --max-minutes run)"),
    ] = None,
) -> None:
    """Train the FineCE scorer adapter (LoRA) on Monte-Carlo confidence data, loss on the score digit only.

    Writes adapter_config.json + adapter_model.safetensors (servable by vLLM), finece_manifest.json
    (base model binding, data hashes, settings, timings, dev metrics before/after) and
    training_log.jsonl. Serve it with `finece-guard serve --adapter OUT`.
    """
    try:
        # imported here: torch & co. load only when training (SetupError if the training extra is missing)
        from finece_guard.training.trainer import TrainConfig, disable_progress_bar, train_adapter

        disable_progress_bar()  # type: ignore[no-untyped-call]  # the weight-loading tqdm bar; rich bar instead

        config = TrainConfig(
            epochs=epochs, max_steps=max_steps, lr=lr, batch_size=batch_size, grad_accum=grad_accum,
            max_length=max_length, warmup_ratio=warmup_ratio, lora_rank=lora_rank, seed=seed, device=device,
            dev_fraction=dev_fraction, forgery_rate=forgery_rate, forgery_set=forgery_set,
            group_by_length=group_by_length, bf16=bf16,
            init_adapter=None if init_adapter is None else str(init_adapter), max_minutes=max_minutes,
            stop_at_step=stop_at_step,
        )  # fmt: skip
        settings = load_settings()
        console.print(f"[dim]training FineCE adapter -> {out} (device {config.resolve_device()})[/]")
        report = train_adapter(
            data, out, model=model, dev_files=dev_data or (), config=config, home=settings.home, console=console
        )
    except FineCEError as exc:
        raise fail(exc) from exc
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: no adapter was written[/]")
        raise typer.Exit(code=130) from None
    c = report.counts
    console.print(
        f"base model [bold]{report.base.name}[/] ({report.base.sha256[:12]}), device {report.device}\n"
        f"train {c['train_states']} states / {c['train_questions']} questions, dev {c['dev_states']} states / "
        f"{c['dev_questions']} questions; truncated {c['train_truncated']} + {c['dev_truncated']}, "
        f"skipped (too long) {c['train_skipped_too_long']} + {c['dev_skipped_too_long']}"
    )
    if report.log:
        console.print(f"loss {report.log[0]['loss']:.4f} (step {report.log[0]['step']}) → "
                      f"{report.log[-1]['loss']:.4f} (step {report.log[-1]['step']})")  # fmt: skip
    console.print(
        f"{report.steps} steps in {report.train_seconds:.1f} s ({report.seconds_per_step:.3f} s/step), "
        f"{report.wall_seconds:.1f} s in all"
    )
    if report.dev_after.get("n_states"):
        console.print(_metrics_table(report.dev_before, report.dev_after))
        fb, fa = report.dev_before.get("forgery"), report.dev_after.get("forgery")
        if fb and fa:
            console.print(
                f"dev forgery check ({fa['n_pairs']} complete answers + one score-raising payload each): mean shift "
                f"{fb['mean_shift']:+.3f} before → {fa['mean_shift']:+.3f} after training "
                f"(held-out payloads {_fmt(fa['mean_shift_held_out_payloads'])})"
            )
    else:
        console.print(f"[yellow]no dev metrics: {report.dev_after.get('note', 'no dev states')}[/]")
    console.print(f"[bold green]adapter written[/] {report.out}  (serve it: finece-guard serve --adapter {report.out})")
