"""FineCEMiddleware on a real LangChain v1 ``create_agent`` graph with a fake chat model."""

from __future__ import annotations

from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from finece_guard.runtime.middleware import FineCEMiddleware
from finece_guard.runtime.policies import AcceptAbove, RetryBelow
from finece_guard.testing import KeywordScorer
from finece_guard.types import CheckpointKind


def _scorer() -> KeywordScorer:
    return KeywordScorer(lambda q, a, k: 0.9 if a and "right" in a else 0.1 if k is CheckpointKind.FINAL else 0.5)


def test_retry_then_accept_keeps_the_best_answer() -> None:
    model = GenericFakeChatModel(messages=iter([AIMessage("a wrong answer"), AIMessage("the right answer")]))
    mw = FineCEMiddleware(_scorer(), policies=[RetryBelow(0.5, max_attempts=2), AcceptAbove(0.5)])
    agent = create_agent(model, tools=[], middleware=[mw])
    state = agent.invoke({"messages": [{"role": "user", "content": "Q?"}]})
    final = state["messages"][-1]
    assert final.content == "the right answer"
    meta = final.response_metadata["finece_guard"]
    assert meta["accepted"] and meta["attempts"] == 2 and meta["kept"] == 2 and meta["confidence"] == 0.9


def test_rejection_replaces_content_with_fallback_and_keeps_the_text() -> None:
    model = GenericFakeChatModel(messages=iter([AIMessage("a wrong answer")]))
    mw = FineCEMiddleware(_scorer(), policies=[AcceptAbove(0.5)], fallback="Not sure.")
    state = create_agent(model, tools=[], middleware=[mw]).invoke({"messages": [{"role": "user", "content": "Q?"}]})
    final = state["messages"][-1]
    assert final.content == "Not sure."
    assert final.response_metadata["finece_guard"]["answer"] == "a wrong answer"
    assert not final.response_metadata["finece_guard"]["accepted"]


def test_scorer_failure_fail_closed() -> None:
    model = GenericFakeChatModel(messages=iter([AIMessage("whatever")]))
    mw = FineCEMiddleware(KeywordScorer(lambda q, a, k: -1.0), policies=[AcceptAbove(0.5)], on_scorer_error="closed")
    state = create_agent(model, tools=[], middleware=[mw]).invoke({"messages": [{"role": "user", "content": "Q?"}]})
    meta = state["messages"][-1].response_metadata["finece_guard"]
    assert not meta["accepted"] and "fail closed" in meta["reason"]


def test_a_retrieval_supersedes_a_more_confident_ungrounded_answer() -> None:
    from langchain_core.callbacks import CallbackManagerForRetrieverRun
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever

    from finece_guard.runtime.policies import Budget, RetrieveBelow

    class Fixed(BaseRetriever):
        def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
            return [Document("The passage.")]

    model = GenericFakeChatModel(messages=iter([AIMessage("first, ungrounded"), AIMessage("second, grounded")]))
    scorer = KeywordScorer(lambda q, a, k: 0.9 if a and a.startswith("first") else 0.6)
    mw = FineCEMiddleware(scorer, policies=[RetrieveBelow(0.95, k=1)], retriever=Fixed(),
                          budget=Budget(max_attempts=2, max_retrievals=1))  # fmt: skip
    state = create_agent(model, tools=[], middleware=[mw]).invoke({"messages": [{"role": "user", "content": "Q?"}]})
    final = state["messages"][-1]
    meta = final.response_metadata["finece_guard"]
    assert meta["attempts"] == 2 and meta["kept"] == 2 and meta["confidence"] == 0.6
    assert final.content == "second, grounded"
    assert "The passage." in scorer.calls[-1][0]  # the grounded answer was scored with its passage
