"""Act early: retrieve before generating when the question looks hopeless, confirm aborts by look-ahead.

* ``RetrieveBelow(0.35, early=True)`` scores the question-only state before any token: below 0.35
  it queries Chroma first and generates once, with the passage; at a partial checkpoint below 0.35
  it stops the answer there and regenerates with the passage.
* ``AbortBelow(0.2, confirm=LookAhead(width=2, depth=1))`` aborts only when look-ahead BCI agrees:
  two continuations of one paragraph are sampled on the current prefix (one request, n=2),
  scored, and folded in with eq. 5; the answer keeps streaming while that runs.

Run against a server started with `finece-guard serve` (or set FINECE_BASE_URL):
    .venv/bin/python examples/early_retrieval_and_lookahead.py
"""

import asyncio
import os

from langchain_core.documents import Document
from langchain_openai import ChatOpenAI

from finece_guard import AbortBelow, LookAhead, OpenAICompatGenerator, OpenAICompatScorer, RetrieveBelow
from finece_guard.retrieval import ChromaConfig, ingest, open_vectorstore
from finece_guard.runtime.guard import FineCEGuard

BASE_URL = os.environ.get("FINECE_BASE_URL", "http://127.0.0.1:8011/v1")
MODEL = "smollm2-135m-instruct"

llm = ChatOpenAI(base_url=BASE_URL, api_key="EMPTY", model=MODEL, temperature=0, max_tokens=120,
                 logprobs=True, top_logprobs=5)
store = open_vectorstore(ChromaConfig(collection="early-example"))
ingest(store, [Document("Mercury is the smallest planet in the Solar System and the closest to the Sun.")])
guard = FineCEGuard(
    llm, scorer=OpenAICompatScorer(BASE_URL), retriever=store.as_retriever(search_kwargs={"k": 1}),
    sampler=OpenAICompatGenerator(BASE_URL, model=MODEL),
    policies=[AbortBelow(0.2, confirm=LookAhead(width=2, depth=1)), RetrieveBelow(0.35, early=True, k=1)],
)


async def main() -> None:
    result = await guard.ainvoke("Which planet is closest to the Sun?")
    for d in result.trace.decisions:
        print(f"{d.action.value:>8} by {d.policy}: {d.reason}")
    print("answer:", result.answer.strip()[:200])
    print("attempts:", len(result.attempts), "| retrieved:", result.trace.retrieved_ids,
          "| look-ahead cost:", result.trace.lookahead_cost)


if __name__ == "__main__":
    asyncio.run(main())
