"""Instruction fine-tuning of the FineCE LoRA adapter (paper III-B, IFT): the pipeline, start to end.

:func:`train_adapter` reads Monte-Carlo data, splits it by question, encodes every state
(:mod:`.encoding`), trains a LoRA with :class:`~.score_trainer.ScoreTrainer` on the score-position
loss (:mod:`.loss`) with the callbacks of :mod:`.progress`, measures the dev set before and after
(:mod:`.dev_eval`) and writes the adapter with its manifest (:mod:`.adapter_out`). Settings and the
base model are :mod:`.config`.
"""

from __future__ import annotations

import hashlib
import logging
import math
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from rich.console import Console
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback, set_seed
from transformers.trainer_callback import PrinterCallback
from transformers.utils.logging import disable_progress_bar

from finece_guard import __version__
from finece_guard.adapters import LORA_TARGETS, MANIFEST, AdapterManifest, check_binding
from finece_guard.backends.model_store import sha256_file
from finece_guard.data.construction import QuestionData, read_dataset
from finece_guard.data.forgery import VARIED_PREFIX, forgery_payloads
from finece_guard.errors import ConfigError, SetupError
from finece_guard.prompts import ASSISTANT_PREFIX, INSTRUCTION
from finece_guard.training.adapter_out import TRAINING_LOG, check_out, write_adapter
from finece_guard.training.config import DEVICES, BaseModel, TrainConfig, resolve_base_model
from finece_guard.training.dev_eval import Prediction, dev_metrics, predict
from finece_guard.training.encoding import Encoded, PromptEncoder, check_prompt_tokens, digit_token_ids
from finece_guard.training.examples import (
    TrainingExample,
    check_disjoint,
    examples_from,
    forged_examples,
    split_by_question,
)
from finece_guard.training.forgery_check import forgery_pairs, forgery_shift
from finece_guard.training.loss import ScoreDataset, batch_loss, collate, last_logits, score_loss
from finece_guard.training.progress import LogRecorder, RichProgress, TimeBudget
from finece_guard.training.score_trainer import ScoreTrainer, training_arguments
from finece_guard.types import CheckpointKind

#: the pipeline, plus the names that lived here before the split (issue 13), importable as before
__all__ = [
    "DEVICES",
    "TRAINING_LOG",
    "BaseModel",
    "Encoded",
    "Prediction",
    "PromptEncoder",
    "ScoreDataset",
    "ScoreTrainer",
    "TrainConfig",
    "TrainReport",
    "batch_loss",
    "check_prompt_tokens",
    "collate",
    "dev_metrics",
    "digit_token_ids",
    "disable_progress_bar",
    "last_logits",
    "predict",
    "resolve_base_model",
    "score_loss",
    "train_adapter",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainReport:
    """What a training run did and where the adapter is."""

    out: Path
    base: BaseModel
    steps: int
    train_seconds: float
    seconds_per_step: float
    wall_seconds: float
    device: str
    counts: dict[str, int]
    dev_before: dict[str, Any]
    dev_after: dict[str, Any]
    log: list[dict[str, Any]] = field(default_factory=list)


def _read_files(paths: Sequence[Path]) -> tuple[list[QuestionData], list[dict[str, Any]]]:
    """All questions of ``paths`` and, per file, its path, sha256 and counts (for the manifest)."""
    data: list[QuestionData] = []
    info: list[dict[str, Any]] = []
    for p in paths:
        questions = read_dataset([p])
        info.append({
            "path": str(p.expanduser().resolve()), "sha256": sha256_file(p), "bytes": p.stat().st_size,
            "questions": len(questions), "states": sum(len(q.states) for q in questions),
        })  # fmt: skip
        data += questions
    return data, info


def _encode_all(encoder: PromptEncoder, examples: Sequence[TrainingExample]) -> tuple[list[Encoded], int]:
    items: list[Encoded] = []
    skipped = 0
    for ex in examples:
        enc = encoder.encode(ex)
        if enc is None:
            skipped += 1
        else:
            items.append(enc)
    return items, skipped


def _load_model(base: BaseModel, device: str) -> Any:
    dtype = torch.bfloat16 if device == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    try:
        model: Any = AutoModelForCausalLM.from_pretrained(str(base.folder), dtype=dtype)
    except (OSError, ValueError) as exc:
        raise SetupError(f"cannot load the base model from {base.folder}: {exc}") from exc
    return model.to(device)


def _kind_counts(items: Sequence[Encoded], prefix: str) -> dict[str, int]:
    return {f"{prefix}_{k.value}": sum(1 for e in items if e.kind is k) for k in CheckpointKind}


def _peft_model(base_model: Any, base: BaseModel, cfg: TrainConfig) -> tuple[Any, dict[str, Any] | None]:
    """A fresh LoRA on ``base_model``, or the ``--init-adapter`` to continue (with what it was)."""
    init_info: dict[str, Any] | None = None
    if cfg.init_adapter is not None:
        init = Path(cfg.init_adapter).expanduser().resolve()
        if not (init / MANIFEST).is_file():
            raise ConfigError(f"--init-adapter {init} is not a FineCE adapter folder (no {MANIFEST})")
        init_manifest = check_binding(init, base.name, base.sha256)
        if init_manifest.rank != cfg.lora_rank:
            raise ConfigError(f"--init-adapter {init} has LoRA rank {init_manifest.rank}; pass --lora-rank "
                              f"{init_manifest.rank} to continue training it")  # fmt: skip
        peft_model: Any = PeftModel.from_pretrained(base_model, str(init), is_trainable=True)
        init_info = {"path": str(init), "sha256": sha256_file(init / "adapter_model.safetensors"),
                     "note": init_manifest.note}  # fmt: skip
    else:
        lora = LoraConfig(
            r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout, bias="none",
            target_modules=list(LORA_TARGETS), task_type="CAUSAL_LM",
        )  # fmt: skip
        peft_model = get_peft_model(base_model, lora)
    return peft_model, init_info


def train_adapter(
    data_files: Sequence[Path],
    out: Path,
    *,
    model: Path | None = None,
    dev_files: Sequence[Path] = (),
    config: TrainConfig | None = None,
    home: Path | None = None,
    console: Console | None = None,
) -> TrainReport:
    """Train a FineCE LoRA on Monte-Carlo data files and write it (with its manifest) to ``out``.

    ``model`` is an HF folder (default: the embedded SmolLM2, converted under ``home`` if needed).
    Dev data is ``dev_files`` if given, else the ``config.dev_fraction`` hash bucket of the questions.
    ``console`` shows a progress bar; without it nothing is printed.
    """
    cfg = config or TrainConfig()
    wall0 = time.perf_counter()
    if not data_files:
        raise ConfigError("no training data given; pass one or more JSONL files from `finece-guard build-data`")
    check_out(out)
    dev_info: list[dict[str, Any]] | None = None
    data, data_info = _read_files(data_files)
    if not data:
        raise ConfigError(
            f"{', '.join(map(str, data_files))} hold no finished questions; run `finece-guard build-data`"
        )
    if dev_files:
        train_q, (dev_q, dev_info) = data, _read_files(dev_files)
        check_disjoint(train_q, dev_q)
    else:
        train_q, dev_q = split_by_question(data, cfg.dev_fraction)
    if not train_q:
        raise ConfigError(f"all {len(data)} questions fell into dev; lower --dev-fraction or add data")
    train_ex, dev_ex = examples_from(train_q), examples_from(dev_q)
    n_forged, n_forged_generated = 0, 0
    if cfg.forgery_rate > 0:
        pool = forgery_payloads(cfg.forgery_set)
        forged = forged_examples(train_ex, cfg.forgery_rate, payloads=pool, seed=cfg.seed)
        n_forged = len(forged)
        n_forged_generated = sum(ex.payload is not None and ex.payload.startswith(VARIED_PREFIX) for ex in forged)
        train_ex = train_ex + forged

    if home is None:
        from finece_guard.config import load_settings

        home = load_settings().home
    base = resolve_base_model(model, home)
    device = cfg.resolve_device()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(base.folder))
    except (OSError, ValueError) as exc:
        raise SetupError(f"cannot load the tokenizer of {base.folder}: {exc}") from exc
    encoder = PromptEncoder(tokenizer, cfg.max_length)
    for kind in CheckpointKind:  # training tokens = serving tokens, next token a bare digit: once per prompt shape
        first = next((e for e in train_ex if e.kind is kind), None)
        if first is not None:
            encoder.check(first)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad_id is None:
        raise SetupError(f"the tokenizer of {base.folder} has neither a pad nor an eos token to pad with")
    train_items, train_skipped = _encode_all(encoder, train_ex)
    dev_items, dev_skipped = _encode_all(encoder, dev_ex)
    pairs = forgery_pairs(dev_ex, seed=cfg.seed)
    pair_items = [(encoder.encode(c), encoder.encode(f), f.payload or "", held) for c, f, held in pairs]
    forgery_items = [(c, f, name, held) for c, f, name, held in pair_items if c is not None and f is not None]
    if not train_items:
        raise ConfigError(f"every training example is longer than --max-length {cfg.max_length} even without its "
                          "answer; raise --max-length")  # fmt: skip
    counts = {
        "train_questions": len(train_q), "dev_questions": len(dev_q),
        "train_states": len(train_items), "dev_states": len(dev_items),
        "train_truncated": sum(e.truncated for e in train_items), "dev_truncated": sum(e.truncated for e in dev_items),
        "train_skipped_too_long": train_skipped, "dev_skipped_too_long": dev_skipped,
        **_kind_counts(train_items, "train"), **_kind_counts(dev_items, "dev"),
        "train_forged": n_forged, "train_forged_generated_wording": n_forged_generated,
        "dev_forgery_pairs": len(forgery_items),
    }  # fmt: skip
    log.info("training on %d states of %d questions (dev: %d / %d)", len(train_items), len(train_q),
             len(dev_items), len(dev_q))  # fmt: skip

    set_seed(cfg.seed)
    base_model = _load_model(base, device)
    peft_model, init_info = _peft_model(base_model, base, cfg)
    digit_ids = torch.tensor(encoder.digit_ids, dtype=torch.long)

    def evaluate() -> dict[str, Any]:
        peft_model.eval()

        def run(items: Sequence[Encoded]) -> list[Prediction]:
            return predict(peft_model, items, encoder.digit_ids, pad_id=pad_id, batch_size=cfg.eval_batch_size,
                           device=device)  # fmt: skip

        metrics = dev_metrics(dev_items, run(dev_items))
        if forgery_items:
            clean = run([c for c, _, _, _ in forgery_items])
            forged = run([f for _, f, _, _ in forgery_items])
            metrics["forgery"] = forgery_shift(
                [p.value for p in clean], [p.value for p in forged], [(n, h) for _, _, n, h in forgery_items]
            )
        return metrics

    dev_before = evaluate()
    recorder = LogRecorder()
    callbacks: list[TrainerCallback] = [recorder]
    budget = (
        TimeBudget(cfg.max_minutes, cfg.stop_at_step)
        if cfg.max_minutes is not None or cfg.stop_at_step is not None
        else None
    )
    if budget is not None:
        callbacks.append(budget)
    if console is not None:
        callbacks.append(RichProgress(console))
    with tempfile.TemporaryDirectory(prefix="finece-train-") as scratch:
        args = training_arguments(cfg, scratch, device)
        trainer = ScoreTrainer(
            model=peft_model, args=args, train_dataset=ScoreDataset(train_items),
            data_collator=lambda batch: collate(batch, pad_id), callbacks=callbacks, digit_ids=digit_ids,
            group_by_length=cfg.group_by_length, seed=cfg.seed,
        )  # fmt: skip
        trainer.remove_callback(PrinterCallback)  # it prints every log dict; the progress bar shows the loss
        t0 = time.perf_counter()
        result = trainer.train()
        train_seconds = time.perf_counter() - t0
    steps = int(result.global_step)
    dev_after = evaluate()
    seconds_per_step = train_seconds / steps if steps else math.nan

    manifest = AdapterManifest(
        base_model=base.name,
        base_model_sha256=base.sha256,
        trained=True,
        rank=cfg.lora_rank,
        alpha=cfg.lora_alpha,
        target_modules=LORA_TARGETS,
        note=f"FineCE IFT adapter trained by finece-guard {__version__} on {len(train_q)} questions"
        + (f" (warm start from {init_info['path']})." if init_info else "."),
        extra={
            "library_version": __version__,
            "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
            "data": data_info,
            "dev_data": dev_info,
            "dev_split": "explicit --dev-data" if dev_files else f"item-key hash < {cfg.dev_fraction}",
            "counts": counts,
            "training": {
                **asdict(cfg),
                "lora_alpha": cfg.lora_alpha,
                "device": device,
                "dtype": str(next(peft_model.parameters()).dtype).removeprefix("torch."),
                "torch": torch.__version__,
                "loss": "soft-target CE, full-vocab log-softmax, score position only",
            },
            "prompt": {
                "assistant_prefix": ASSISTANT_PREFIX,
                "instruction_sha256": hashlib.sha256(INSTRUCTION.encode()).hexdigest(),
                "digit_token_ids": encoder.digit_ids,
            },
            "steps": steps,
            "epochs_done": float(result.metrics.get("epoch", 0.0) or 0.0),
            "train_seconds": round(train_seconds, 3),
            "seconds_per_step": round(seconds_per_step, 4),
            "final_logged_loss": recorder.records[-1]["loss"] if recorder.records else None,
            "dev_metrics": {"before": dev_before, "after": dev_after},
            "dev_metrics_before_is": "the --init-adapter" if init_info else "the untrained LoRA (= base model)",
            "init_adapter": init_info,
            "stopped_by_time_budget_at_step": budget.stopped_at if budget is not None else None,
        },
    )
    write_adapter(peft_model, out, manifest, recorder.records, base.name)
    return TrainReport(
        out=out.expanduser().resolve(), base=base, steps=steps, train_seconds=train_seconds,
        seconds_per_step=seconds_per_step, wall_seconds=time.perf_counter() - wall0, device=device,
        counts=counts, dev_before=dev_before, dev_after=dev_after, log=recorder.records,
    )  # fmt: skip
