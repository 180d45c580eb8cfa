"""Instruction fine-tuning of the FineCE LoRA adapter (paper III-B, IFT): loss on the score digit only.

Why it is built this way:

* **Same prompt, same tokens as serving.** Each state is rendered with the base model's own chat
  template from :func:`~finece_guard.prompts.build_scorer_messages`, assistant turn continued
  (``continue_final_message=True``): the same HF call vLLM makes for a scorer request with
  ``continue_final_message=True, add_generation_prompt=False``. The text is encoded without
  adding special tokens again; :func:`check_prompt_tokens` verifies that this equals the chat
  template's own tokenisation (vLLM's path) and that a digit written after the prompt is one
  new token (no space merging into it), so the position trained is the position read out.
* **One position, a soft target.** Only the logits after the prompt's last token contribute:
  the cross-entropy between the soft target (:func:`~finece_guard.training.examples.soft_target`,
  whose mean is the label) and the *full-vocabulary* log-softmax at that position, with target
  mass only on the ten digit tokens, so the model also learns to put its mass on digits at all.
  The model is asked for that one position's logits (``logits_to_keep=1``), which with left
  padding is every sequence's real last token (position ids are counted from the first real
  token, so padding changes nothing).
* **Too long?** The answer is cut (its start kept), never the question or the prompt's end.
* **The adapter is bound to its base.** The folder is written atomically with a manifest
  (:class:`~finece_guard.adapters.AdapterManifest`) naming the base model and its weight hash,
  computed exactly as the server does, plus data hashes, settings, timings and dev metrics
  before (untrained LoRA = base model) and after training.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from finece_guard import __version__
from finece_guard.adapters import LORA_TARGETS, MANIFEST, AdapterManifest, check_binding
from finece_guard.backends.model_store import DEFAULT_MODEL_NAME, ensure_default_model, sha256_file, weights_sha256
from finece_guard.data.construction import QuestionData, read_dataset
from finece_guard.errors import ConfigError, MetricError, SetupError
from finece_guard.metrics import auroc, brier, ece
from finece_guard.prompts import ASSISTANT_PREFIX, DEFAULT_SCALE, INSTRUCTION
from finece_guard.training.examples import (
    N_LEVELS,
    TrainingExample,
    check_disjoint,
    examples_from,
    forged_examples,
    split_by_question,
)
from finece_guard.training.forgery_check import forgery_pairs, forgery_shift
from finece_guard.types import CheckpointKind

try:
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        PreTrainedTokenizerBase,
        Trainer,
        TrainerCallback,
        TrainerControl,
        TrainerState,
        TrainingArguments,
        set_seed,
    )
    from transformers.trainer_callback import PrinterCallback
    from transformers.trainer_pt_utils import LengthGroupedSampler
    from transformers.utils.logging import disable_progress_bar as disable_progress_bar  # for the CLI
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise SetupError(
        f"`finece-guard train` needs torch, transformers, peft and accelerate ({exc}); "
        "install them with: pip install 'finece-guard[training]' (or run `make setup`)"
    ) from exc

log = logging.getLogger(__name__)

TRAINING_LOG = "training_log.jsonl"
DEVICES = ("auto", "cpu", "cuda")


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class TrainConfig:
    """Training settings (defaults: LoRA r=8/α=16 on q,k,v,o; AdamW 1e-4, 10% warm-up, linear decay)."""

    epochs: float = 2.0
    max_steps: int | None = None
    lr: float = 1e-4
    batch_size: int = 4
    grad_accum: int = 1
    max_length: int = 512
    warmup_ratio: float = 0.1
    lora_rank: int = 8
    lora_dropout: float = 0.05
    seed: int = 0
    device: str = "auto"
    dev_fraction: float = 0.1
    eval_batch_size: int = 8
    logging_steps: int = 1
    #: forged-confidence twins per partial / complete training state (0 = no augmentation)
    forgery_rate: float = 0.0
    #: batches of similar-length prompts (less padding per step); order is still seeded-random
    group_by_length: bool = False
    #: bfloat16 autocast on CPU (needs avx512_bf16 / AMX to be fast); LoRA weights stay float32
    bf16: bool = False
    #: warm start: continue training this FineCE adapter folder (same base model and rank) instead of a fresh LoRA;
    #: the "before" dev metrics are then that adapter's, on the same dev states
    init_adapter: str | None = None
    #: stop after this many minutes of optimizer steps (the adapter is still written); None = no limit
    max_minutes: float | None = None

    def __post_init__(self) -> None:
        checks: list[tuple[bool, str]] = [
            (self.epochs > 0, f"epochs={self.epochs} must be positive"),
            (self.max_steps is None or self.max_steps >= 1, f"max_steps={self.max_steps} must be at least 1"),
            (0.0 < self.lr < 1.0, f"lr={self.lr} must be in (0, 1) (1e-4 is typical for LoRA)"),
            (self.batch_size >= 1, f"batch_size={self.batch_size} must be at least 1"),
            (self.grad_accum >= 1, f"grad_accum={self.grad_accum} must be at least 1"),
            (self.max_length >= 32, f"max_length={self.max_length} is too short for the scorer prompt (use >= 256)"),
            (0.0 <= self.warmup_ratio < 1.0, f"warmup_ratio={self.warmup_ratio} must be in [0, 1)"),
            (self.lora_rank >= 1, f"lora_rank={self.lora_rank} must be at least 1 (8 is the default)"),
            (0.0 <= self.lora_dropout < 1.0, f"lora_dropout={self.lora_dropout} must be in [0, 1)"),
            (self.device in DEVICES, f"device={self.device!r}: use one of {', '.join(DEVICES)}"),
            (0.0 <= self.dev_fraction < 1.0, f"dev_fraction={self.dev_fraction} must be in [0, 1)"),
            (self.eval_batch_size >= 1, f"eval_batch_size={self.eval_batch_size} must be at least 1"),
            (self.logging_steps >= 1, f"logging_steps={self.logging_steps} must be at least 1"),
            (0.0 <= self.forgery_rate <= 16.0, f"forgery_rate={self.forgery_rate} must be in [0, 16] (0 = off)"),
            (self.max_minutes is None or self.max_minutes > 0, f"max_minutes={self.max_minutes} must be positive"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    @property
    def lora_alpha(self) -> int:
        """α = 2r, as the untrained adapter and the manifest default."""
        return 2 * self.lora_rank

    def resolve_device(self) -> str:
        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ConfigError("--device cuda, but torch sees no CUDA GPU; use --device cpu (or auto)")
        return self.device


@dataclass(frozen=True)
class BaseModel:
    """The model folder the adapter is trained on, named and hashed as the server names and hashes it."""

    folder: Path
    name: str
    sha256: str


def resolve_base_model(model: Path | None, home: Path) -> BaseModel:
    """``model`` (an HF folder) or the embedded default, exactly as :func:`resolve_stack` resolves it."""
    if model is None:
        folder = ensure_default_model(home)
        name = DEFAULT_MODEL_NAME
    else:
        folder = model.expanduser().resolve()
        if not (folder / "config.json").is_file():
            raise ConfigError(
                f"--model {model} is not a Hugging Face model folder (no config.json). Pass a folder with "
                "config.json and safetensors weights, or omit --model for the embedded default."
            )
        name = folder.name
    return BaseModel(folder=folder, name=name, sha256=weights_sha256(folder))


# --------------------------------------------------------------------------- tokenisation


def digit_token_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Token ids of "0".."9", each of which must be one token of its own."""
    ids: list[int] = []
    for level in DEFAULT_SCALE.levels:
        enc = tokenizer.encode(level, add_special_tokens=False)
        if len(enc) != 1 or tokenizer.decode(enc) != level:
            raise SetupError(
                f"the tokenizer encodes the score digit {level!r} as {enc}, not as one token of its own; the "
                "one-position FineCE readout needs single-token digits. Use a base model whose tokenizer splits "
                "digits (SmolLM2, Llama 3, Qwen 2 do)."
            )
        ids.append(enc[0])
    return ids


@dataclass(frozen=True)
class Encoded:
    """A tokenised example: prompt ids (the score is predicted after the last one) and its soft target."""

    input_ids: list[int]
    target: tuple[float, ...]
    kind: CheckpointKind
    label: float
    truncated: bool = False


class PromptEncoder:
    """Renders scorer prompts with the base model's chat template and encodes them for training."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, max_length: int = 512) -> None:
        if not getattr(tokenizer, "chat_template", None):
            raise SetupError("the base model's tokenizer has no chat template; the scorer prompt is a chat")
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.digit_ids = digit_token_ids(tokenizer)

    def render(self, messages: list[dict[str, str]]) -> str:
        """The prompt text, ending exactly at the assistant prefix (as vLLM renders it)."""
        text = self.tokenizer.apply_chat_template(messages, continue_final_message=True, tokenize=False)
        return str(text)

    def ids(self, messages: list[dict[str, str]]) -> list[int]:
        return list(self.tokenizer.encode(self.render(messages), add_special_tokens=False))

    def check(self, example: TrainingExample) -> None:
        """Verify on one example that training tokens = serving tokens and the next token is a bare digit."""
        check_prompt_tokens(self.tokenizer, example.messages(), self.digit_ids)

    def encode(self, example: TrainingExample) -> Encoded | None:
        """The example's ids, its answer cut (start kept) to fit ``max_length``; None if even no answer won't fit."""
        ids = self.ids(example.messages())
        truncated = False
        if len(ids) > self.max_length:
            cut = self._truncate(example)
            if cut is None:
                return None
            ids, truncated = cut, True
        return Encoded(ids, example.target, example.kind, example.label, truncated)

    def _truncate(self, example: TrainingExample) -> list[int] | None:
        if example.answer is None:
            return None
        empty = self.ids(example.messages(answer=""))
        if len(empty) > self.max_length:
            return None
        answer_ids = self.tokenizer.encode(example.answer, add_special_tokens=False)
        keep = min(len(answer_ids), self.max_length - len(empty))
        while keep > 0:
            text = str(self.tokenizer.decode(answer_ids[:keep])).rstrip("\ufffd")  # no half multi-byte character
            ids = self.ids(example.messages(answer=text))
            if len(ids) <= self.max_length:
                return ids
            keep -= max(1, len(ids) - self.max_length)  # escaping (& -> &amp;) can add tokens
        return empty


def check_prompt_tokens(
    tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]], digit_ids: list[int]
) -> None:
    """Raise :class:`SetupError` unless the trained tokens are the served tokens, followed by a bare digit."""
    text = str(tokenizer.apply_chat_template(messages, continue_final_message=True, tokenize=False))
    if not text.endswith(ASSISTANT_PREFIX):
        raise SetupError(
            f"the chat template does not end the prompt with the assistant prefix {ASSISTANT_PREFIX!r} "
            f"(it ends with {text[-40:]!r}); it does not support continuing the final message."
        )
    ids = list(tokenizer.encode(text, add_special_tokens=False))
    served = tokenizer.apply_chat_template(
        messages, continue_final_message=True, add_generation_prompt=False, tokenize=True, return_dict=False
    )
    if list(served) != ids:
        raise SetupError(
            "encoding the rendered prompt gives other tokens than the chat template's own tokenisation (what vLLM "
            "feeds the model); the tokenizer adds or merges special tokens. Training would not match serving."
        )
    for level, digit in zip(DEFAULT_SCALE.levels, digit_ids, strict=True):
        with_digit = list(tokenizer.encode(text + level, add_special_tokens=False))
        if with_digit != [*ids, digit]:
            raise SetupError(
                f"after the prompt (ending {ASSISTANT_PREFIX!r}) the digit {level!r} does not tokenise as one new "
                f"token: {with_digit[len(ids) - 1 :]} instead of {[ids[-1], digit]}. The prompt's trailing space "
                "merges with the digit in this tokenizer; the readout position would not be the trained one."
            )


# --------------------------------------------------------------------------- batching and loss


class ScoreDataset(torch.utils.data.Dataset[Encoded]):
    """Pre-tokenised examples (tokenisation is cheap next to one training step)."""

    def __init__(self, items: Sequence[Encoded]) -> None:
        self.items = list(items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Encoded:
        return self.items[index]


def collate(items: Sequence[Encoded], pad_id: int) -> dict[str, torch.Tensor]:
    """Left-padded batch: column -1 is every sequence's real last token (the score position).

    ``position_ids`` count from each sequence's first real token, so a padded sequence gets the
    same logits as the same sequence alone (as vLLM sees it).
    """
    if not items:
        raise ValueError("cannot collate an empty batch")
    width = max(len(e.input_ids) for e in items)
    input_ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(items), width), dtype=torch.long)
    for row, e in enumerate(items):
        n = len(e.input_ids)
        input_ids[row, width - n :] = torch.tensor(e.input_ids, dtype=torch.long)
        attention_mask[row, width - n :] = 1
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    target = torch.tensor([e.target for e in items], dtype=torch.float32)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "position_ids": position_ids, "target": target}


def score_loss(last_logits: torch.Tensor, target: torch.Tensor, digit_ids: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the soft digit targets against the full-vocabulary log-softmax.

    ``last_logits``: (batch, vocab) at the score position; ``target``: (batch, 10).
    Probability put on non-digit tokens is loss too, so training also moves mass onto digits.
    """
    logp = torch.log_softmax(last_logits.float(), dim=-1)
    digit_logp = logp.index_select(-1, digit_ids.to(logp.device))
    return -(target.to(logp.device) * digit_logp).sum(-1).mean()


def last_logits(model: Callable[..., Any], batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """(batch, vocab) logits after each sequence's last token; only that position is computed."""
    out = model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        position_ids=batch["position_ids"],
        logits_to_keep=1,
    )
    logits: torch.Tensor = out.logits
    return logits[:, -1, :]


def batch_loss(model: Callable[..., Any], batch: dict[str, torch.Tensor], digit_ids: torch.Tensor) -> torch.Tensor:
    """The training loss of a collated batch: the score position only."""
    return score_loss(last_logits(model, batch), batch["target"], digit_ids)


class _ScoreTrainer(Trainer):
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


# --------------------------------------------------------------------------- progress and log


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
    still evaluated and written). The learning-rate schedule is the one planned for the full run."""

    def __init__(self, minutes: float) -> None:
        self.seconds = minutes * 60.0
        self.t0 = 0.0
        self.stopped_at: int | None = None

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any) -> None:
        self.t0 = time.perf_counter()

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any) -> None:
        if time.perf_counter() - self.t0 >= self.seconds:
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


# --------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class Prediction:
    """What the scorer reads out for one state: the expected value over the digits and the mass on them."""

    value: float
    digit_mass: float
    loss: float


@torch.inference_mode()
def predict(
    model: Callable[..., Any], items: Sequence[Encoded], digit_ids: list[int], *, pad_id: int, batch_size: int,
    device: str,
) -> list[Prediction]:  # fmt: skip
    """Readout per example: digits' probabilities renormalised, expected value (as the served readout)."""
    ids = torch.tensor(digit_ids, dtype=torch.long)
    levels = torch.arange(N_LEVELS, dtype=torch.float32) / (N_LEVELS - 1)
    out: list[Prediction] = []
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        batch = {k: v.to(device) for k, v in collate(chunk, pad_id).items()}
        logits = last_logits(model, batch).float().cpu()
        logp = torch.log_softmax(logits, dim=-1).index_select(-1, ids)
        probs = logp.exp()
        mass = probs.sum(-1)
        values = (probs / mass.unsqueeze(-1) * levels).sum(-1)
        losses = -(batch["target"].cpu() * logp).sum(-1)
        out += [
            Prediction(float(v), float(m), float(lo))
            for v, m, lo in zip(values.tolist(), mass.tolist(), losses.tolist(), strict=True)
        ]
    return out


def _final_metrics(preds: Sequence[float], labels: Sequence[float]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    notes: dict[str, str] = {}
    binary = [round(y) for y in labels]
    for name, fn in (("ece", ece), ("auroc", auroc), ("brier", brier)):
        try:
            result[name] = fn(list(preds), binary)
        except MetricError as exc:
            result[name] = None
            notes[name] = str(exc)
    if notes:
        result["notes"] = notes
    return result


def dev_metrics(items: Sequence[Encoded], predictions: Sequence[Prediction]) -> dict[str, Any]:
    """Brier against the soft label per kind, and ECE / AUROC / Brier on final (0/1) states."""
    if not items:
        return {"n_states": 0, "note": "no dev questions (raise --dev-fraction or pass --dev-data)"}

    def summary(sel: list[int]) -> dict[str, Any]:
        preds = [predictions[i].value for i in sel]
        labels = [items[i].label for i in sel]
        return {
            "n_states": len(sel),
            "mean_prediction": sum(preds) / len(sel),
            "mean_label": sum(labels) / len(sel),
            "brier_soft": sum((p - y) ** 2 for p, y in zip(preds, labels, strict=True)) / len(sel),
            "loss": sum(predictions[i].loss for i in sel) / len(sel),
            "digit_mass": sum(predictions[i].digit_mass for i in sel) / len(sel),
        }

    result = summary(list(range(len(items))))
    by_kind: dict[str, Any] = {}
    for kind in CheckpointKind:
        sel = [i for i, e in enumerate(items) if e.kind is kind]
        if not sel:
            continue
        by_kind[kind.value] = summary(sel)
        if kind is CheckpointKind.FINAL:
            by_kind[kind.value].update(
                _final_metrics([predictions[i].value for i in sel], [items[i].label for i in sel])
            )
    result["by_kind"] = by_kind
    return result


# --------------------------------------------------------------------------- the pipeline


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


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MANIFEST).is_file())):
        raise ConfigError(
            f"--out {out} exists and is not a FineCE adapter folder; pick a new folder (an existing adapter "
            "folder, one with a finece_manifest.json, is replaced)."
        )


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


def _write_adapter(
    model: PeftModel, out: Path, manifest: AdapterManifest, log_records: Sequence[dict[str, Any]], base_name: str
) -> None:
    out = out.expanduser().resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".train-", dir=out.parent))
    try:
        model.peft_config["default"].base_model_name_or_path = base_name
        model.save_pretrained(str(tmp), save_embedding_layers=False)  # LoRA on attention only; no Hub lookup
        (tmp / "README.md").unlink(missing_ok=True)  # peft's model-card stub; the manifest documents the adapter
        if not (tmp / "adapter_model.safetensors").is_file():
            raise SetupError(f"peft did not write adapter_model.safetensors in {tmp}; is peft >= 0.17 installed?")
        with (tmp / TRAINING_LOG).open("w") as fh:
            for rec in log_records:
                fh.write(json.dumps(rec) + "\n")
        manifest.write(tmp)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _kind_counts(items: Sequence[Encoded], prefix: str) -> dict[str, int]:
    return {f"{prefix}_{k.value}": sum(1 for e in items if e.kind is k) for k in CheckpointKind}


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
    _check_out(out)
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
    n_forged = 0
    if cfg.forgery_rate > 0:
        forged = forged_examples(train_ex, cfg.forgery_rate, seed=cfg.seed)
        n_forged = len(forged)
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
        "train_forged": n_forged, "dev_forgery_pairs": len(forgery_items),
    }  # fmt: skip
    log.info("training on %d states of %d questions (dev: %d / %d)", len(train_items), len(train_q),
             len(dev_items), len(dev_q))  # fmt: skip

    set_seed(cfg.seed)
    base_model = _load_model(base, device)
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
    budget = TimeBudget(cfg.max_minutes) if cfg.max_minutes is not None else None
    if budget is not None:
        callbacks.append(budget)
    if console is not None:
        callbacks.append(RichProgress(console))
    with tempfile.TemporaryDirectory(prefix="finece-train-") as scratch:
        args = TrainingArguments(
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
        trainer = _ScoreTrainer(
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
    _write_adapter(peft_model, out, manifest, recorder.records, base.name)
    return TrainReport(
        out=out.expanduser().resolve(), base=base, steps=steps, train_seconds=train_seconds,
        seconds_per_step=seconds_per_step, wall_seconds=time.perf_counter() - wall0, device=device,
        counts=counts, dev_before=dev_before, dev_after=dev_after, log=recorder.records,
    )  # fmt: skip
