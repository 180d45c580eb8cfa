"""Retrieve from Chroma only when FineCE confidence is low, then regenerate with the passages.

    .venv/bin/python examples/retrieval_on_low_confidence.py
"""

import asyncio
import os
import tempfile
from pathlib import Path

from langchain_core.documents import Document
from langchain_openai import ChatOpenAI

from finece_guard import OpenAICompatScorer
from finece_guard.embeddings import MiniLMEmbeddings
from finece_guard.retrieval import ChromaConfig, ingest, open_vectorstore
from finece_guard.runtime.guard import FineCEGuard
from finece_guard.runtime.policies import RetrieveBelow

BASE_URL = os.environ.get("FINECE_BASE_URL", "http://127.0.0.1:8011/v1")


async def main() -> None:
    store = open_vectorstore(
        ChromaConfig(collection="example", persist_dir=Path(tempfile.mkdtemp()) / "chroma"), MiniLMEmbeddings()
    )
    ingest(store, [Document("The mitochondrion is the organelle that produces most of a cell's ATP."),
                   Document("Chlorophyll absorbs red and blue light and reflects green light.")])
    llm = ChatOpenAI(base_url=BASE_URL, api_key="EMPTY", model="smollm2-135m-instruct",
                     temperature=0, max_tokens=80, logprobs=True, top_logprobs=5)
    guard = FineCEGuard(
        llm, scorer=OpenAICompatScorer(BASE_URL),
        retriever=store.as_retriever(search_kwargs={"k": 1}),
        policies=[RetrieveBelow(0.35, k=1)],  # retrieve + regenerate when the answer's confidence < 0.35
    )
    result = await guard.ainvoke("Which organelle produces most of a cell's ATP?")
    for attempt in result.attempts:
        print(f"attempt {attempt.number}: confidence {attempt.confidence}, retrieved {attempt.retrieved_ids}")
    print("kept attempt", result.trace.kept, "→", result.answer)


if __name__ == "__main__":
    asyncio.run(main())
