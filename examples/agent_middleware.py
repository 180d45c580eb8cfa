"""FineCE on a LangChain v1 agent: each text answer is scored; retry below 0.5, reject below 0.3.

    .venv/bin/python examples/agent_middleware.py
"""

import os

from langchain.agents import create_agent
from langchain_openai import ChatOpenAI

from finece_guard import AcceptAbove, OpenAICompatScorer, RetryBelow
from finece_guard.runtime.middleware import FineCEMiddleware

BASE_URL = os.environ.get("FINECE_BASE_URL", "http://127.0.0.1:8011/v1")

llm = ChatOpenAI(base_url=BASE_URL, api_key="EMPTY", model="smollm2-135m-instruct", temperature=0, max_tokens=60)
agent = create_agent(
    llm,
    tools=[],
    middleware=[FineCEMiddleware(OpenAICompatScorer(BASE_URL),
                                 policies=[RetryBelow(0.3, max_attempts=2), AcceptAbove(0.3)])],
)
state = agent.invoke({"messages": [{"role": "user", "content": "What is the boiling point of water in Celsius?"}]})
answer = state["messages"][-1]
print(answer.content)
print(answer.response_metadata["finece_guard"])
