#!/usr/bin/env bash
# Checks of the second 2026-12-03 candidate once shipped as the default (finece), beside the default it
# replaced (cand = runs/default-2026-12-02, extracted from git: `git show f36d731:<adapter dir>/<file>`):
# the gating curve on 150 SciQ test questions (both adapters, same answers, FineCE+ of the new default)
# and the forgery-payload table with and without the rater-text filter. One server, stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUN=runs/ship-2026-12-03
mkdir -p "$RUN"
CAND=$PWD/runs/default-2026-12-02 bash reports/issue-11-2026-12-02/serve.sh >"$RUN/serve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true' EXIT
URL=http://127.0.0.1:8021/v1
for _ in $(seq 600); do curl -sf "$URL/models" >/dev/null && break; sleep 1; done
curl -sf "$URL/models" >/dev/null
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
PY=.venv/bin/python
ADAPTER=finece_guard/adapters_data/SmolLM2-135M-Instruct
$PY -m benchmarks.gating_curve --base-url "$URL" --model finece,cand --n 150 --label default-2026-12-03 \
  --fusion "$ADAPTER/finece_fusion.json" >"$RUN/gating.log" 2>&1 &
GATE=$!
$PY -m benchmarks.forgery_injection --base-url "$URL" --model finece --label default-2026-12-03 >"$RUN/forgery.log" 2>&1
wait $GATE
$PY -m benchmarks.forgery_injection --base-url "$URL" --model finece --label default-2026-12-03-nofilter --no-filter \
  >"$RUN/forgery-nofilter.log" 2>&1
