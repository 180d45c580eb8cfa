"""FineCE adapter training (paper III-B, IFT): examples with soft digit targets, and the LoRA trainer.

:mod:`~finece_guard.training.examples` is pure Python (prompts, targets, the train/dev split); the
rest needs the ``training`` extra (torch, transformers, peft), and importing this package without
it is a :class:`~finece_guard.errors.SetupError` saying how to install it. The trainer by concept:

* :mod:`.config` — settings and the base model;
* :mod:`.encoding` — scorer prompts as training tokens (the served tokens, then one digit);
* :mod:`.loss` — left-padded batches, the score-position loss;
* :mod:`.score_trainer` — the ``transformers.Trainer`` subclass and its arguments;
* :mod:`.progress` — callbacks: loss log, time budget, rich progress bar;
* :mod:`.dev_eval` — the served readout on dev states, and dev metrics;
* :mod:`.adapter_out` — the adapter folder, its manifest and training log;
* :mod:`.trainer` — :func:`train_adapter`, the pipeline (what ``finece-guard train`` drives).
"""

from finece_guard.training import _torch  # noqa: F401  # first: a missing training extra is a SetupError
from finece_guard.training.config import BaseModel, TrainConfig, resolve_base_model
from finece_guard.training.encoding import PromptEncoder
from finece_guard.training.examples import (
    TrainingExample,
    check_disjoint,
    examples_from,
    expected_level,
    soft_target,
    split_by_question,
)
from finece_guard.training.trainer import TrainReport, train_adapter

__all__ = [
    "BaseModel",
    "PromptEncoder",
    "TrainConfig",
    "TrainReport",
    "TrainingExample",
    "check_disjoint",
    "examples_from",
    "expected_level",
    "resolve_base_model",
    "soft_target",
    "split_by_question",
    "train_adapter",
]
