#!/usr/bin/env bash
# Lever 6's effect, measured where only the data differ: candidate 6 (trained on the commit-labelled rows)
# against candidate 4 (same recipe, same seed and schedule, the old labels) on the same 354 dev answers.
# Reads candidate 6's re-scored dev records written by ../issue-11-2026-12-04/eval-candidate4.sh (NAME=cand6),
# serves candidate 4 beside them (bf16, as every selection) and writes
# benchmarks/results/adapter_pair_cand6-vs-cand4-<DAY>-dev.md, where "this" = candidate 6, "ref" = candidate 4.
# Usage: [DAY=2026-12-06] lever6-effect.sh [WAIT_PID]   (about 8 min on 2 cores; resumable, journaled)
set -euo pipefail
cd "$(dirname "$0")/../.."
DAY=${DAY:-2026-12-06}
WAIT_PID=${1:-}
OUT=runs/cand6-$DAY
URL=http://127.0.0.1:8021/v1
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
if [[ -n "$WAIT_PID" ]]; then while kill -0 "$WAIT_PID" 2>/dev/null; do sleep 20; done; fi
REC=$OUT/records-dev.rescored-cand6.jsonl
test -s "$REC" || { echo "no $REC: run the cand6 eval first" >&2; exit 1; }
CAND=/work/main/reports/issue-11-2026-12-04/candidate4-adapter CAND_NAME=cand4 \
  bash reports/issue-11-2026-12-02/serve.sh >"$OUT/serve-cand4.log" 2>&1 &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true' EXIT
for _ in $(seq 120); do curl -sf "$URL/models" >/dev/null && break; sleep 5; done
curl -sf "$URL/models" >/dev/null || { echo "server did not start" >&2; exit 1; }
.venv/bin/python -m benchmarks.rescore_same_answers "$REC" --base-url "$URL" \
  --reference cand4 --strategy periodic:32 --label "cand6-vs-cand4-$DAY-dev"
