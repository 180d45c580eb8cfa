"""FineCE adapter training (paper III-B, IFT): examples with soft digit targets, and the LoRA trainer.

:mod:`~finece_guard.training.examples` is pure Python (prompts, targets, the train/dev split);
:mod:`~finece_guard.training.trainer` needs the ``training`` extra (torch, transformers, peft).
The ``finece-guard train`` command drives :func:`train_adapter`.
"""

from finece_guard.training.examples import (
    TrainingExample,
    check_disjoint,
    examples_from,
    expected_level,
    soft_target,
    split_by_question,
)
from finece_guard.training.trainer import (
    BaseModel,
    PromptEncoder,
    TrainConfig,
    TrainReport,
    resolve_base_model,
    train_adapter,
)

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
