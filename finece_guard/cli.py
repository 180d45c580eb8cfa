"""The ``finece-guard`` command line: serve, ask, setup, demo, build-data, train, eval.

Every command reads the same settings (``FINECE_*`` environment variables, then options), and
every command that starts a vLLM server stops it (process group, by PID) on exit, Ctrl-C or
SIGTERM. Library errors are printed as one clear message with exit code 2, not a traceback.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from finece_guard.backends.openai_generator import OpenAICompatGenerator
from finece_guard.backends.openai_scorer import OpenAICompatScorer
from finece_guard.backends.stack import resolve_stack
from finece_guard.backends.vllm_server import VLLMServer, port_is_free
from finece_guard.commands.build_data import build_data
from finece_guard.commands.common import announce, console, fail, server_for, sigterm_as_interrupt
from finece_guard.commands.demo import demo
from finece_guard.commands.eval import eval_command
from finece_guard.commands.train import train
from finece_guard.config import FineCESettings, load_settings
from finece_guard.errors import FineCEError, PortInUseError
from finece_guard.runtime.checkpoints import parse_strategy
from finece_guard.runtime.monitor import stream_with_confidence
from finece_guard.types import ScoredCheckpoint, TokenEvent, Trace

app = typer.Typer(
    help="FineCE confidence guards for LangChain + vLLM. Start with `finece-guard serve` or `finece-guard ask`.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.command()
def serve(
    model: Annotated[
        Path | None, typer.Option(help="HF model folder (default: embedded SmolLM2-135M-Instruct)")
    ] = None,
    adapter: Annotated[Path | None, typer.Option(help="FineCE LoRA folder (default: bundled or untrained)")] = None,
    served_model_name: Annotated[str | None, typer.Option(help="name clients use as model= for the generator")] = None,
    host: Annotated[str, typer.Option(help="bind address (keep 127.0.0.1 unless you know why)")] = "127.0.0.1",
    port: Annotated[int | None, typer.Option(help="port (default FINECE_PORT or 8011)")] = None,
    max_model_len: Annotated[int | None, typer.Option(help="context length")] = None,
    vllm_python: Annotated[Path | None, typer.Option(help="python of the vLLM venv (default ./.venv-vllm)")] = None,
    dtype: Annotated[
        str | None,
        typer.Option(help="auto (bf16 only on a CPU with native bf16, else float32) | bfloat16 | float32 | float16"),
    ] = None,
    extra_arg: Annotated[list[str] | None, typer.Option("--extra-arg", help="extra vLLM argument, repeatable")] = None,
) -> None:
    """Start vLLM co-hosting the generator and the FineCE adapter; Ctrl-C or SIGTERM stops it."""
    try:
        settings = load_settings(
            host=host, port=port, max_model_len=max_model_len, vllm_python=vllm_python, dtype=dtype
        )
        if not port_is_free(settings.host, settings.port):
            raise PortInUseError(
                f"{settings.host}:{settings.port} is already in use. Stop what is using it, pick another "
                "--port, or point clients at that server with --base-url if it is vLLM."
            )
        stack = resolve_stack(
            settings, model=model, adapter=adapter, served_name=served_model_name, extra_args=tuple(extra_arg or ())
        )
        server = VLLMServer(stack.spec, startup_timeout_s=settings.startup_timeout_s)
        with sigterm_as_interrupt():
            try:
                console.print(
                    f"[dim]starting vLLM: {stack.spec.model_dir.name} + adapter on {host}:{stack.spec.port}[/]"
                )
                server.start()
                announce(stack, server)
                console.print("[dim]Ctrl-C to stop.[/]")
                while server.process is not None and server.process.poll() is None:
                    time.sleep(0.5)
                if server.process is not None:
                    raise fail(RuntimeError(f"vLLM exited with code {server.process.returncode}\n{server.log_tail()}"))
            except KeyboardInterrupt:
                console.print("\n[dim]stopping vLLM...[/]")
            finally:
                server.stop()
    except FineCEError as exc:
        raise fail(exc) from exc


def _render_checkpoint(sc: ScoredCheckpoint) -> str:
    cp = sc.checkpoint
    if sc.score is None:
        return f" [red]⟨#{cp.position} {cp.kind.value}: scoring failed⟩[/]"
    s = sc.score
    color = "green" if s.value >= 0.66 else "yellow" if s.value >= 0.33 else "red"
    return f" [{color}]⟨#{cp.position} {cp.kind.value} {s.value:.2f}±{s.spread:.2f}⟩[/]"


def _trace_table(trace: Trace) -> Table:
    table = Table(title="checkpoints (raw → BCI-refined)", show_lines=False)
    for col in ("#", "kind", "tokens", "reason", "raw", "spread", "refined", "latency"):
        table.add_column(col, justify="right" if col not in ("kind", "reason") else "left")
    for sc, ref in zip(trace.checkpoints, trace.refined, strict=True):
        s = sc.score
        table.add_row(
            str(sc.checkpoint.position),
            sc.checkpoint.kind.value,
            str(sc.checkpoint.n_tokens),
            sc.checkpoint.reason,
            f"{s.value:.3f}" if s else f"[red]{(sc.error or '')[:40]}[/]",
            f"{s.spread:.3f}" if s else "",
            f"{ref:.3f}" if ref is not None else "",
            f"{s.latency_s:.2f}s" if s else "",
        )
    return table


async def _ask_one(
    question: str, base_url: str, settings: FineCESettings, strategy_spec: str, max_tokens: int, as_json: bool
) -> Trace:
    generator = OpenAICompatGenerator.from_settings(settings, base_url)
    from finece_guard.backends.recalibration import served_recalibrator  # sklearn: load only when asking

    strategy = parse_strategy(strategy_spec)  # a bad spec fails before any network call
    recal, _ = await asyncio.to_thread(served_recalibrator, base_url, settings.scorer_model, api_key=settings.api_key)
    scorer = OpenAICompatScorer.from_settings(settings, base_url, recalibrator=recal)
    trace: Trace | None = None
    if not as_json:
        console.print(f"\n[bold]Q:[/] {question}\n[bold]A:[/] ", end="")
    try:
        async for item in stream_with_confidence(
            question, generator=generator, scorer=scorer, strategy=strategy, max_tokens=max_tokens,
            alpha=settings.bci_alpha, window=settings.bci_window,
        ):  # fmt: skip
            if as_json:
                if isinstance(item, Trace):
                    trace = item
                continue
            if isinstance(item, TokenEvent):
                console.print(item.text, end="", markup=False, highlight=False)
            elif isinstance(item, ScoredCheckpoint):
                console.print(_render_checkpoint(item), end="")
            else:
                trace = item
    finally:
        await generator.aclose()
        await scorer.aclose()
    assert trace is not None
    if as_json:
        print(json.dumps(trace.to_dict()), flush=True)
    else:
        console.print()
        console.print(_trace_table(trace))
        final = trace.refined[-1] if trace.refined else None
        console.print(f"final confidence: [bold]{final:.3f}[/]" if final is not None else "final confidence: n/a")
    return trace


def _run_questions(
    questions: list[str], base_url: str | None, strategy: str, max_tokens: int, as_json: bool, overrides: dict[str, Any]
) -> list[Trace]:
    settings = load_settings(**overrides)
    with server_for(settings, base_url, quiet=as_json) as url:
        return [asyncio.run(_ask_one(q, url, settings, strategy, max_tokens, as_json)) for q in questions]


@app.command()
def ask(
    question: Annotated[list[str], typer.Argument(help="one or more questions")],
    base_url: Annotated[
        str | None, typer.Option(help="existing OpenAI-compatible server, e.g. http://127.0.0.1:8011/v1")
    ] = None,
    checkpoints: Annotated[str, typer.Option(help="paragraph[:min_tokens] | periodic:N | entropy:T")] = "paragraph",
    max_tokens: Annotated[int, typer.Option(min=1, help="answer length limit")] = 200,
    alpha: Annotated[float | None, typer.Option(help="BCI revision coefficient α in [0,1]")] = None,
    window: Annotated[int | None, typer.Option(help="BCI window w")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON trace per question, nothing else")] = False,
) -> None:
    """Stream an answer with FineCE scores at each checkpoint, then the BCI-refined trace.

    Uses --base-url / FINECE_BASE_URL if given, else a server already running on the default
    port, else starts one (and stops it afterwards).
    """
    try:
        _run_questions(question, base_url, checkpoints, max_tokens, as_json, {"bci_alpha": alpha, "bci_window": window})
    except FineCEError as exc:
        raise fail(exc) from exc
    except KeyboardInterrupt:
        raise typer.Exit(code=130) from None


@app.command()
def setup() -> None:
    """Prepare the embedded default: convert the model (once) and locate/create its adapter."""
    try:
        settings = load_settings()
        t0 = time.monotonic()
        stack = resolve_stack(settings)
        console.print(f"model    {stack.spec.model_dir}")
        console.print(f"adapter  {stack.spec.adapter_dir} ({'trained' if stack.adapter_trained else 'UNTRAINED'})")
        console.print(f"vLLM     {stack.spec.python}")
        console.print(f"ready in {time.monotonic() - t0:.1f} s")
    except FineCEError as exc:
        raise fail(exc) from exc


app.command("build-data")(build_data)
app.command("train")(train)
app.command("demo")(demo)
app.command("eval")(eval_command)


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
