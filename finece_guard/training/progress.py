"""Trainer callbacks: the loss log, the time budget, and the rich progress bar (the training UI)."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments


class LogRecorder(TrainerCallback):
    """Keeps every logged training loss (written to ``training_log.jsonl``) and times the steps."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.t0 = 0.0

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any) -> None:
        self.t0 = time.perf_counter()

    def on_log(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, logs: dict[str, Any] | None = None,
        **kw: Any,
    ) -> None:  # fmt: skip
        if logs and "loss" in logs:
            self.records.append({
                "step": state.global_step,
                "epoch": round(float(state.epoch or 0.0), 4),
                "loss": float(logs["loss"]),
                "grad_norm": float(logs["grad_norm"]) if logs.get("grad_norm") is not None else None,
                "learning_rate": float(logs.get("learning_rate", 0.0)),
                "seconds": round(time.perf_counter() - self.t0, 3),
            })  # fmt: skip


class TimeBudget(TrainerCallback):
    """Stops training once ``minutes`` of steps have run (a CPU session has a deadline; the adapter is
    still evaluated and written), or at optimizer step ``step`` (to reproduce a run that a time budget
    stopped, on a machine of another speed). The learning-rate schedule is the one planned for the
    full run."""

    def __init__(self, minutes: float | None = None, step: int | None = None) -> None:
        self.seconds = None if minutes is None else minutes * 60.0
        self.step = step
        self.t0 = 0.0
        self.stopped_at: int | None = None

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any) -> None:
        self.t0 = time.perf_counter()

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any) -> None:
        timed_out = self.seconds is not None and time.perf_counter() - self.t0 >= self.seconds
        if timed_out or (self.step is not None and state.global_step >= self.step):
            control.should_training_stop = True
            self.stopped_at = state.global_step


class RichProgress(TrainerCallback):
    """A rich progress bar over optimizer steps with the latest loss (replaces tqdm)."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("[bold]train[/]"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(), TimeRemainingColumn(), console=console,
        )  # fmt: skip
        self.task: Any = None

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any) -> None:
        self.progress.start()
        self.task = self.progress.add_task("train", total=state.max_steps, info="")

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any) -> None:
        self.progress.update(self.task, completed=state.global_step)

    def on_log(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, logs: dict[str, Any] | None = None,
        **kw: Any,
    ) -> None:  # fmt: skip
        if logs and "loss" in logs:
            info = f"loss {float(logs['loss']):.4f}  lr {float(logs.get('learning_rate', 0.0)):.2e}"
            self.progress.update(self.task, info=info)

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any) -> None:
        self.progress.stop()
