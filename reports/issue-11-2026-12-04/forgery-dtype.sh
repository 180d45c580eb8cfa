#!/usr/bin/env bash
# Is part of the forgery table's "benign floor" (any same-length text flips 18-38% of AcceptAbove decisions)
# bf16 rounding rather than the adapter? The shipped default, the same 20 cached answers, two payloads,
# scored once on a bf16 and once on an fp32 server (one at a time, 127.0.0.1, stopped by PID).
set -euo pipefail
cd "$(dirname "$0")/../.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
PORT=${PORT:-8041}
for DTYPE in ${DTYPES:-bfloat16 float32}; do
  .venv/bin/finece-guard serve --port "$PORT" --dtype "$DTYPE" >"runs/forgery-dtype-$DTYPE.serve.log" 2>&1 &
  SERVER=$!
  trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true' EXIT
  for _ in $(seq 600); do curl -sf "http://127.0.0.1:$PORT/v1/models" >/dev/null && break; sleep 1; done
  .venv/bin/python -m benchmarks.forgery_injection --base-url "http://127.0.0.1:$PORT/v1" --n 20 \
    --payloads "conf09-9,conf-percent" --label "default-2026-12-03-$DTYPE-n20"
  kill $SERVER; wait $SERVER 2>/dev/null || true; trap - EXIT
done
