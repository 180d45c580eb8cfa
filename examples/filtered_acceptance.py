"""Confidence-filtered acceptance: answer only when FineCE confidence ≥ δ, else a fallback.

    .venv/bin/python examples/filtered_acceptance.py
"""

import os

from langchain_openai import ChatOpenAI

from finece_guard import OpenAICompatScorer
from finece_guard.runtime.guard import FineCEGuard
from finece_guard.runtime.policies import AcceptAbove

BASE_URL = os.environ.get("FINECE_BASE_URL", "http://127.0.0.1:8011/v1")

llm = ChatOpenAI(base_url=BASE_URL, api_key="EMPTY", model="smollm2-135m-instruct",
                 temperature=0, max_tokens=60, logprobs=True, top_logprobs=5)
guard = FineCEGuard(llm, scorer=OpenAICompatScorer(BASE_URL),
                    policies=[AcceptAbove(0.35, fallback="I don't know that reliably.")])

for question in ["What is the capital of France?", "Who was the 14th person to walk on the Moon?"]:
    result = guard.invoke(question)  # sync works too
    print(f"Q: {question}\nA: {result.content}")
    print(f"   accepted={result.accepted} confidence={result.confidence} ({result.reason})")
    if not result.accepted:
        print(f"   (the rejected answer is still available: {result.answer[:60]!r})")
