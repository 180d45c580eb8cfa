"""Text helpers the runtime shares: message text, the question of a chat, passages, streamed tokens.

One place for the small parsers every part of a guarded call needs, so the guard, the callback
handler and the middleware never import ``data/`` or the HTTP generator for a string or a parser:

* :func:`message_text` — the text of a message (string or content blocks);
* :func:`question_of_messages` — the question of a chat (its last human message);
* :data:`CONTEXT_TEMPLATE` / :func:`with_passages` — how retrieved passages go ahead of a question
  (the same shape as the passage tasks of the training data, which import it from here);
* :func:`logprob_token_events` / :func:`chunk_token_events` — streamed tokens with their logprobs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage

from finece_guard.errors import ConfigError
from finece_guard.types import TokenEvent

#: metadata keys the guard (or a user) sets in the run config to steer the callback handler
QUESTION_KEY = "finece_question"
SESSION_KEY = "finece_session"

#: Block put before the question when a passage is shown (retrieval, and the passage tasks' prompts).
CONTEXT_TEMPLATE = "Passage: {context}\n\n"


def content_text(content: Any) -> str:
    """The text of a message ``content`` (a string or a list of blocks)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        blocks = (b for b in content if isinstance(b, str | dict))
        return "".join(b if isinstance(b, str) else str(b.get("text", "")) for b in blocks)
    return ""


def message_text(message: Any) -> str:
    """The text of a message, a chunk or a string (anything else has none)."""
    if isinstance(message, str):
        return message
    if isinstance(message, BaseMessage):
        return content_text(message.content)
    return ""


def question_of_messages(messages: Sequence[BaseMessage]) -> str:
    """The question of a chat: the text of its last human message."""
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            return message_text(message)
    raise ConfigError(
        "cannot find the question: the chat has no human message. Pass metadata "
        f"{{'{QUESTION_KEY}': '...'}} in the run config to say what the question is."
    )


def passages_head(passages: Sequence[str]) -> str:
    """The block that puts retrieved passages ahead of a question."""
    return CONTEXT_TEMPLATE.format(context="\n\n".join(passages)) if passages else ""


def with_passages(messages: Sequence[BaseMessage], passages: Sequence[str]) -> list[BaseMessage]:
    """``messages`` with the passages put ahead of the last human message's text."""
    out = list(messages)
    if not passages:
        return out
    for i in range(len(out) - 1, -1, -1):
        if isinstance(out[i], HumanMessage):
            out[i] = HumanMessage(content=passages_head(passages) + message_text(out[i]))
            return out
    raise ConfigError("cannot add retrieved context: the input has no human message")


def logprob_token_events(text: str | None, content: Any, start: int) -> list[TokenEvent]:
    """TokenEvents of one streamed piece: its ``logprobs.content`` entries, else the text alone.

    A piece with no text carries no answer tokens, even when it has logprobs: vLLM reports the
    stop token (e.g. ``<|im_end|>``) that way, and it must not become part of the answer.
    """
    if not text:
        return []
    if content:
        return [
            TokenEvent(
                index=start + i,
                text=str(c.get("token", "")),
                logprob=c.get("logprob"),
                top_logprobs=tuple((str(t["token"]), float(t["logprob"])) for t in c.get("top_logprobs") or ()),
            )
            for i, c in enumerate(content)
        ]
    return [TokenEvent(index=start, text=text)]


def chunk_token_events(token: str, chunk: Any, logprobs: Any, start: int) -> list[TokenEvent]:
    """TokenEvents of one LangChain streamed chunk, from ``logprobs`` or the chunk's generation_info."""
    lp = logprobs
    if lp is None and chunk is not None:
        lp = (getattr(chunk, "generation_info", None) or {}).get("logprobs")
    content = lp.get("content") if isinstance(lp, dict) else lp if isinstance(lp, list) else None
    return logprob_token_events(token, content, start)
