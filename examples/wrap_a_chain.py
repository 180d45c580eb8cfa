"""Wrap an LCEL chain with FineCEGuard: stream it, see each checkpoint's confidence, get a verdict.

Run against a server started with `finece-guard serve` (or set FINECE_BASE_URL):
    .venv/bin/python examples/wrap_a_chain.py
"""

import asyncio
import os

from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_openai import ChatOpenAI

from finece_guard import OpenAICompatScorer
from finece_guard.runtime.guard import FineCEGuard
from finece_guard.runtime.policies import AbortBelow

BASE_URL = os.environ.get("FINECE_BASE_URL", "http://127.0.0.1:8011/v1")

llm = ChatOpenAI(base_url=BASE_URL, api_key="EMPTY", model="smollm2-135m-instruct",
                 temperature=0, max_tokens=120, logprobs=True, top_logprobs=5)
prompt = ChatPromptTemplate.from_messages([("human", "{question}")])
guarded = FineCEGuard(prompt | llm, scorer=OpenAICompatScorer(BASE_URL), policies=[AbortBelow(0.1)])
chain = guarded | StrOutputParser()  # the guard's output is an AIMessage: parsers compose


async def main() -> None:
    question = {"question": "Why do leaves change colour in autumn?"}
    async for event in guarded.astream_events(question, version="v2"):
        if event["event"] == "on_custom_event" and event["name"] == "finece_checkpoint":
            data = event["data"]
            print(f"[{data['kind']} after {data['n_tokens']} tokens: confidence {data['score']}]")
    result = await guarded.ainvoke(question)
    print(result.answer)
    print("confidence:", result.confidence, "| accepted:", result.accepted, "|", result.reason)
    print("as a plain chain:", (await chain.ainvoke(question))[:80], "...")


if __name__ == "__main__":
    asyncio.run(main())
