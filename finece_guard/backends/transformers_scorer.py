"""In-process FineCE scorer on plain transformers (+ peft for the adapter).

For machines without vLLM (e.g. a GPU image with transformers only) and for checks that the
served scorer reads what the model really says. Same prompt (:func:`build_scorer_messages`
rendered with the model's chat template, assistant turn continued) and the same readout (expected
value over the score tokens among the top-k next-token log-probabilities) as the vLLM scorer.
Requests are batched (left padding) and the forward pass runs in a worker thread, so the event
loop never blocks; one lock serialises use of the model. An optional ``recalibrator`` maps each
value as in the vLLM scorer (raw expected value kept in ``Score.raw_value``).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, overload

from finece_guard.backends.base import BaseScorer, ScoreMap, ScoreRequest, recalibrated
from finece_guard.config import setting_default
from finece_guard.errors import FineCEError, SetupError
from finece_guard.prompts import DEFAULT_SCALE, ScoreScale, scorer_prompt
from finece_guard.types import CheckpointKind, Score


class TransformersScorer(BaseScorer):
    """Scores states with a local model folder and (optionally) a FineCE LoRA adapter folder."""

    def __init__(
        self,
        model_dir: Path,
        adapter_dir: Path | None = None,
        *,
        batch_size: int = 8,
        top_logprobs: int = 20,
        min_mass: float = 0.01,
        device: str = "cpu",
        scale: ScoreScale = DEFAULT_SCALE,
        recalibrator: ScoreMap | None = None,
        strip_rater_text: bool = setting_default("strip_rater_text"),
    ) -> None:
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as exc:
            raise SetupError(
                "TransformersScorer needs torch and transformers: pip install 'finece-guard[local]'"
            ) from exc
        if not (Path(model_dir) / "config.json").is_file():
            raise SetupError(f"{model_dir} is not a Hugging Face model folder (no config.json)")
        self._torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        model: Any = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
        if adapter_dir is not None:
            try:
                from peft import PeftModel
            except ImportError as exc:
                raise SetupError("loading a LoRA adapter needs peft: pip install 'finece-guard[training]'") from exc
            model = PeftModel.from_pretrained(model, str(adapter_dir))
        self.model = model.to(device).eval()
        self.device = device
        self.batch_size = batch_size
        self.top_logprobs = top_logprobs
        self.min_mass = min_mass
        self.scale = scale
        self.max_concurrency = batch_size
        self.recalibrator = recalibrator
        self.strip_rater_text = strip_rater_text
        self._lock = threading.Lock()

    def render(self, question: str, answer: str | None, kind: CheckpointKind) -> str:
        """The exact prompt text fed to the model."""
        return self._render(question, answer, kind)[0]

    def _render(self, question: str, answer: str | None, kind: CheckpointKind) -> tuple[str, tuple[str, ...]]:
        """The prompt text for one state and the rater-text patterns removed from it."""
        prompt = scorer_prompt(question, answer, kind, strip_rater_text=self.strip_rater_text)
        text = self.tokenizer.apply_chat_template(prompt.messages, tokenize=False, continue_final_message=True)
        return str(text), prompt.rater_text

    def _forward(self, prompts: list[str]) -> list[list[tuple[str, float]]]:
        torch = self._torch
        out: list[list[tuple[str, float]]] = []
        with self._lock, torch.inference_mode():
            for i in range(0, len(prompts), self.batch_size):
                chunk = prompts[i : i + self.batch_size]
                enc: Any = self.tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False)
                enc = {k: v.to(self.device) for k, v in enc.items()}
                logits = self.model(**enc).logits[:, -1, :].float()
                logp = torch.log_softmax(logits, dim=-1)
                top = torch.topk(logp, self.top_logprobs, dim=-1)
                for vals, ids in zip(top.values.tolist(), top.indices.tolist(), strict=True):
                    toks = self.tokenizer.convert_ids_to_tokens(ids)
                    out.append(
                        [(self.tokenizer.convert_tokens_to_string([t]), v) for t, v in zip(toks, vals, strict=True)]
                    )
        return out

    @overload
    async def ascore_many(
        self, requests: Sequence[ScoreRequest], *, return_exceptions: Literal[False] = ...
    ) -> list[Score]: ...

    @overload
    async def ascore_many(
        self, requests: Sequence[ScoreRequest], *, return_exceptions: bool
    ) -> list[Score | BaseException]: ...

    async def ascore_many(
        self, requests: Sequence[ScoreRequest], *, return_exceptions: bool = False
    ) -> list[Score] | list[Score | BaseException]:
        t0 = time.perf_counter()
        rendered = [self._render(*r) for r in requests]
        prompts = [text for text, _ in rendered]
        tops = await asyncio.to_thread(self._forward, prompts)
        latency = (time.perf_counter() - t0) / max(1, len(requests))
        results: list[Score | BaseException] = []
        for top, (_, rater_text) in zip(tops, rendered, strict=True):
            try:
                s = self.scale.read(top, min_mass=self.min_mass)
                raw = Score(s.value, s.spread, s.mass, s.distribution, latency, rater_text=rater_text)
                results.append(recalibrated(raw, self.recalibrator))
            except FineCEError as exc:
                if not return_exceptions:
                    raise
                results.append(exc)
        return results

    async def ascore(self, question: str, answer: str | None, kind: CheckpointKind) -> Score:
        (result,) = await self.ascore_many([(question, answer, kind)])
        return result
