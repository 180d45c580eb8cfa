"""In-process sampler on plain transformers, for building FineCE data without a vLLM server.

It offers the same ``sample_continuations`` call as :class:`OpenAICompatGenerator` (the chat
template applied to the question, the answer prefix continued, ``n`` samples) so that data
construction and BCI look-ahead run on a machine that has transformers but no vLLM. Generation
runs in a worker thread under a lock, so the event loop never blocks and the model is never used
by two threads at once.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from finece_guard.backends.openai_generator import question_messages
from finece_guard.errors import ConfigError, SetupError


class TransformersGenerator:
    """Samples answers and continuations from a local Hugging Face model folder."""

    def __init__(self, model_dir: Path, *, device: str = "cpu") -> None:
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as exc:
            raise SetupError("TransformersGenerator needs torch and transformers: install finece-guard[local]") from exc
        if not (Path(model_dir) / "config.json").is_file():
            raise SetupError(f"{model_dir} is not a Hugging Face model folder (no config.json)")
        self._torch = torch
        self.tokenizer: Any = AutoTokenizer.from_pretrained(str(model_dir))
        model: Any = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
        self.model = model.to(device).eval()
        self.device = device
        self._lock = threading.Lock()

    def render(self, question: str, answer_prefix: str) -> str:
        """The prompt text: chat template, with the assistant turn continued when a prefix is given."""
        msgs: list[dict[str, str]] = list(question_messages(question))
        if answer_prefix:
            msgs.append({"role": "assistant", "content": answer_prefix})
            text = self.tokenizer.apply_chat_template(msgs, tokenize=False, continue_final_message=True)
        else:
            text = self.tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        return str(text)

    def _generate(
        self, prompt: str, n: int, max_tokens: int, temperature: float, top_p: float, seed: int | None
    ) -> list[str]:
        torch = self._torch
        with self._lock, torch.inference_mode():
            if seed is not None:
                torch.manual_seed(seed)
            enc = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(self.device)
            out = self.model.generate(
                **enc,
                do_sample=temperature > 0,
                temperature=temperature if temperature > 0 else None,
                top_p=top_p if temperature > 0 else None,
                max_new_tokens=max_tokens,
                num_return_sequences=n,
                pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
            )
            new = out[:, enc["input_ids"].shape[1] :]
            return [str(t) for t in self.tokenizer.batch_decode(new, skip_special_tokens=True)]

    async def sample_continuations(
        self,
        question: str,
        answer_prefix: str,
        *,
        n: int,
        max_tokens: int,
        temperature: float = 0.8,
        top_p: float = 0.95,
        seed: int | None = None,
    ) -> list[str]:
        """``n`` sampled continuations of ``answer_prefix`` (whole answers when it is empty)."""
        if n < 1:
            raise ConfigError(f"n={n} continuations: use 1 or more")
        prompt = self.render(question, answer_prefix)
        return await asyncio.to_thread(self._generate, prompt, n, max_tokens, temperature, top_p, seed)

    async def aclose(self) -> None:
        """Nothing to close (kept for symmetry with the HTTP generator)."""
