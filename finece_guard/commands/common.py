"""Plumbing shared by the CLI commands: consoles, error exit, and "a server for this command".

:func:`server_for` is how every command that talks to vLLM gets a base URL: the one given, a
server of ours already running on the default port, or one started for the command and stopped
(process group, by PID) when the command ends, on Ctrl-C and on SIGTERM.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import httpx
import typer
from rich.console import Console
from rich.markup import escape

from finece_guard.backends.dtype import reproducibility_note
from finece_guard.backends.stack import Stack, resolve_stack
from finece_guard.backends.vllm_server import VLLMServer, free_port, port_is_free, served_dtype
from finece_guard.config import FineCESettings
from finece_guard.redact import redact_text

console = Console()
err_console = Console(stderr=True)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    old = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def fail(exc: BaseException) -> typer.Exit:
    """Print ``exc`` as one error line (credentials redacted) and return the exit to raise."""
    err_console.print(f"[bold red]error:[/] {escape(redact_text(str(exc)))}", highlight=False)
    return typer.Exit(code=2)


def announce(stack: Stack, server: VLLMServer) -> None:
    console.print(f"[bold green]vLLM is up[/] in {server.startup_s:.1f} s  (pid {server.pid}, log {server.log_path})")
    console.print(f"  base URL   [bold]{server.base_url}[/]")
    console.print(f"  generator  model=[bold]{stack.spec.served_name}[/]  ({stack.spec.model_dir})")
    console.print(f"  scorer     model=[bold]{stack.spec.adapter_name}[/]  ({stack.spec.adapter_dir})")
    dtype = served_dtype(stack.spec)
    console.print(f"  dtype      {dtype}  (requested {stack.spec.dtype!r})")
    note = reproducibility_note(dtype)
    if note:
        console.print(f"             [dim]{note}[/]")
    console.print(f"  scheduling {stack.spec.scheduling_policy}")
    if not stack.adapter_trained:
        console.print(
            "[bold yellow on red] WARNING: the FineCE adapter is UNTRAINED [/] it is a freshly initialised LoRA "
            "(equal to the base model prompted with the FineCE instruction). Its scores are NOT calibrated "
            "confidence. Train one with `finece-guard train` (training pipeline) or pass --adapter."
        )


def server_is_ours(base_url: str, settings: FineCESettings) -> bool:
    with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
        r = httpx.get(f"{base_url}/models", timeout=2.0)
        ids = {m["id"] for m in r.json()["data"]}
        return {settings.generator_model, settings.scorer_model} <= ids
    return False


@contextlib.contextmanager
def server_for(
    settings: FineCESettings, base_url: str | None, quiet: bool, *, adapter: Path | None = None
) -> Iterator[str]:
    """Yield a base URL: the given one, a running default server, or one started for this command.

    With ``adapter`` a server is always started (serving that adapter), never reused.
    """
    if base_url or settings.base_url:
        yield (base_url or settings.base_url or "").rstrip("/")
        return
    default_url = f"http://{settings.host}:{settings.port}/v1"
    if adapter is None and server_is_ours(default_url, settings):
        if not quiet:
            console.print(f"[dim]using the server already running at {default_url}[/]")
        yield default_url
        return
    port = settings.port if port_is_free(settings.host, settings.port) else free_port(settings.host)
    stack = resolve_stack(settings, port=port, adapter=adapter)
    if not quiet:
        console.print(f"[dim]no server at {default_url}; starting vLLM on port {port} (takes ~30-60 s on CPU)...[/]")
    server = VLLMServer(stack.spec, startup_timeout_s=settings.startup_timeout_s)
    with sigterm_as_interrupt(), server:
        if not quiet:
            announce(stack, server)
        yield server.base_url
    if not quiet:
        console.print("[dim]vLLM stopped.[/]")
