"""The ``transformers.Trainer`` subclass that trains on :func:`~finece_guard.training.loss.batch_loss`."""

from __future__ import annotations

from typing import Any

import torch
from transformers import Trainer, TrainingArguments
from transformers.trainer_pt_utils import LengthGroupedSampler

from finece_guard.training.config import TrainConfig
from finece_guard.training.loss import ScoreDataset, batch_loss


class ScoreTrainer(Trainer):
    """A Trainer whose loss is :func:`batch_loss` (no LM labels, no other positions)."""

    def __init__(
        self, *args: Any, digit_ids: torch.Tensor, group_by_length: bool = False, seed: int = 0, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.digit_ids = digit_ids
        self.group_by_length = group_by_length
        self.sampler_seed = seed
        self.model_accepts_loss_kwargs = False  # our loss is a per-batch mean: let Trainer scale for grad accum

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if not self.group_by_length or not isinstance(dataset, ScoreDataset):
            return super()._get_train_sampler(train_dataset)
        generator = torch.Generator()
        generator.manual_seed(self.sampler_seed)
        return LengthGroupedSampler(
            self.args.train_batch_size * self.args.gradient_accumulation_steps,
            lengths=[len(e.input_ids) for e in dataset.items],
            generator=generator,
        )

    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, torch.Tensor | Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, Any]:
        loss = batch_loss(model, inputs, self.digit_ids)
        return (loss, None) if return_outputs else loss


def training_arguments(cfg: TrainConfig, scratch: str, device: str) -> TrainingArguments:
    """The Trainer's arguments for ``cfg`` (no checkpoints, no tqdm, no reporting; scratch output folder)."""
    return TrainingArguments(
        output_dir=scratch, per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum, num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps if cfg.max_steps is not None else -1, learning_rate=cfg.lr,
        warmup_steps=cfg.warmup_ratio, lr_scheduler_type="linear", optim="adamw_torch", weight_decay=0.0,
        logging_steps=cfg.logging_steps, save_strategy="no", eval_strategy="no", report_to="none",
        disable_tqdm=True, seed=cfg.seed, data_seed=cfg.seed, use_cpu=device == "cpu",
        bf16=(device == "cuda" and torch.cuda.is_bf16_supported()) or (device == "cpu" and cfg.bf16),
        remove_unused_columns=False,
        label_names=["target"], dataloader_num_workers=0, dataloader_pin_memory=device == "cuda",
    )  # fmt: skip
