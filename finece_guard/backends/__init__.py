"""How scores and generations are obtained, and the server they come from.

* scorers: :class:`OpenAICompatScorer` (the vLLM-served FineCE adapter), :class:`TransformersScorer`
  (in process), both :class:`BaseScorer`; the generator :class:`OpenAICompatGenerator`;
* serving: :class:`VLLMServer` / :class:`ServeSpec` (the vLLM launcher), :func:`server_models` and
  :class:`ServedModel` (what a server serves);
* recalibration, applied by the scorers (``recalibrator=``): :class:`Recalibrator` and its kinds,
  :func:`recalibrator_for_adapter`, :func:`served_recalibrator`.

Names are imported on first use (sklearn, for instance, only loads with recalibration).
"""

from typing import TYPE_CHECKING

from finece_guard._lazy import lazy_exports

if TYPE_CHECKING:
    from finece_guard.backends.base import BaseScorer
    from finece_guard.backends.openai_generator import OpenAICompatGenerator
    from finece_guard.backends.openai_scorer import OpenAICompatScorer
    from finece_guard.backends.recalibration import (
        RECALIBRATION_FILE,
        IsotonicRecalibrator,
        PlattRecalibrator,
        Recalibrator,
        load_recalibrator,
        recalibrator_for_adapter,
        recalibrator_from_dict,
        served_recalibrator,
    )
    from finece_guard.backends.served_models import ServedModel, server_models
    from finece_guard.backends.transformers_scorer import TransformersScorer
    from finece_guard.backends.vllm_server import ServeSpec, VLLMServer

_EXPORTS = {
    "BaseScorer": "finece_guard.backends.base",
    "IsotonicRecalibrator": "finece_guard.backends.recalibration",
    "OpenAICompatGenerator": "finece_guard.backends.openai_generator",
    "OpenAICompatScorer": "finece_guard.backends.openai_scorer",
    "PlattRecalibrator": "finece_guard.backends.recalibration",
    "RECALIBRATION_FILE": "finece_guard.backends.recalibration",
    "Recalibrator": "finece_guard.backends.recalibration",
    "ServeSpec": "finece_guard.backends.vllm_server",
    "ServedModel": "finece_guard.backends.served_models",
    "TransformersScorer": "finece_guard.backends.transformers_scorer",
    "VLLMServer": "finece_guard.backends.vllm_server",
    "load_recalibrator": "finece_guard.backends.recalibration",
    "recalibrator_for_adapter": "finece_guard.backends.recalibration",
    "recalibrator_from_dict": "finece_guard.backends.recalibration",
    "served_recalibrator": "finece_guard.backends.recalibration",
    "server_models": "finece_guard.backends.served_models",
}

__all__ = [
    "RECALIBRATION_FILE",
    "BaseScorer",
    "IsotonicRecalibrator",
    "OpenAICompatGenerator",
    "OpenAICompatScorer",
    "PlattRecalibrator",
    "Recalibrator",
    "ServeSpec",
    "ServedModel",
    "TransformersScorer",
    "VLLMServer",
    "load_recalibrator",
    "recalibrator_for_adapter",
    "recalibrator_from_dict",
    "served_recalibrator",
    "server_models",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
