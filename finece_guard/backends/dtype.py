"""Which dtype a vLLM server we start should compute in, chosen from the CPU it runs on.

bf16 halves memory traffic, but a CPU without native bf16 instructions emulates it: on an
AVX2-only machine the same vLLM-CPU server measured 8 concurrent streams at 17.7 tok/s in bf16
vs 55.9 tok/s in fp32, and a cold ~400-token score at 0.77 s vs 0.25 s (docs ENVIRONMENT.md §5).
Scoring is prefill and load is batching, so the wrong dtype makes the guard three times as
expensive. The rule (``dtype="auto"``, the default):

* vLLM-CPU build: ``bfloat16`` only where ``/proc/cpuinfo`` lists a native bf16 instruction set
  (``avx512_bf16`` or ``amx_bf16`` on x86, ``bf16`` on Arm), else ``float32``;
* any other vLLM (a GPU build, ``FINECE_VLLM_PYTHON`` pointing at the normal ``vllm`` package):
  ``auto``, i.e. vLLM's own choice (the checkpoint's bf16/fp16 on a GPU);
* an explicit dtype (settings ``dtype`` / ``finece-guard serve --dtype``) is passed through.

bf16 is faster but not reproducible to the digit: on an Intel AMX machine the same scorer prompt
scored 0.022 apart on its first and its prefix-cached scoring, fp32 identically
(benchmarks/results/score_noise.md); :func:`reproducibility_note` says so where a server starts.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

from finece_guard.config import DTYPES
from finece_guard.errors import ConfigError

#: cpuinfo flags that mean the CPU computes bf16 natively (x86 AVX-512-BF16 / AMX; Arm's "bf16")
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})
CPUINFO = Path("/proc/cpuinfo")


def cpu_flags(cpuinfo: str) -> frozenset[str]:
    """The feature flags of the first processor in a ``/proc/cpuinfo`` text (x86 ``flags``, Arm ``Features``)."""
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in ("flags", "features"):
            return frozenset(value.split())
    return frozenset()


def has_native_bf16(cpuinfo: str) -> bool:
    """True if the CPU described by ``cpuinfo`` has a native bf16 instruction set."""
    return bool(cpu_flags(cpuinfo) & BF16_FLAGS)


def read_cpuinfo(path: Path = CPUINFO) -> str:
    """The text of ``/proc/cpuinfo``, or ``""`` where there is none (not Linux)."""
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


@functools.cache
def is_cpu_build(python: Path) -> bool:
    """True if ``python``'s vLLM is the CPU build (distribution ``vllm-cpu``), without importing vLLM.

    An interpreter that cannot be asked (missing, broken) counts as a CPU build: choosing the
    dtype from the CPU is then the safe side (fp32 is never slower than emulated bf16 on a CPU).
    """
    probe = "import importlib.metadata as m, sys; m.distribution('vllm-cpu'); sys.exit(0)"
    try:
        done = subprocess.run([str(python), "-c", probe], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return True
    if done.returncode == 0:
        return True
    return b"PackageNotFoundError" not in done.stderr


def serving_dtype(requested: str, *, cpu_build: bool, cpuinfo: str) -> str:
    """The ``--dtype`` to pass to vLLM for ``requested`` (pure: the CPU is given as cpuinfo text)."""
    if requested not in DTYPES:
        raise ConfigError(f"dtype={requested!r}: use one of {', '.join(DTYPES)}, e.g. dtype='auto'")
    if requested != "auto":
        return requested
    if not cpu_build:
        return "auto"
    return "bfloat16" if has_native_bf16(cpuinfo) else "float32"


def resolve_dtype(requested: str, python: Path) -> str:
    """:func:`serving_dtype` for this machine's CPU and the vLLM behind ``python``."""
    if requested != "auto":
        return serving_dtype(requested, cpu_build=True, cpuinfo="")
    return serving_dtype(requested, cpu_build=is_cpu_build(python), cpuinfo=read_cpuinfo())


def reproducibility_note(served: str) -> str | None:
    """What a user should know about the scores of a server computing in ``served`` (None: nothing)."""
    if served not in ("bfloat16", "float16"):
        return None
    return (f"{served} scores do not repeat exactly: the same prompt can score about 0.02 apart when it is "
            "answered from the prefix cache; serve with --dtype float32 where a decision near a threshold "
            "must repeat")  # fmt: skip
