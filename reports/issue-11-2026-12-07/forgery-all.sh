#!/usr/bin/env bash
# The whole forgery table (all payload rows, 40 answers) of the shipped default as served, on an fp32 server:
# benchmarks/results/forgery_injection_default-<DAY>-float32-all.{md,json}. About 30 min on 2 cores.
# Usage: [DAY=2026-12-07] forgery-all.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
DAY=${DAY:-2026-12-07}
mkdir -p runs
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
bash reports/issue-11-2026-12-07/serve.sh >runs/serve-forgery-all.log 2>&1 &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true' EXIT
for _ in $(seq 120); do curl -sf http://127.0.0.1:8021/v1/models >/dev/null && break; sleep 5; done
.venv/bin/python -m benchmarks.forgery_injection --base-url http://127.0.0.1:8021/v1 --label "default-$DAY-float32-all"
