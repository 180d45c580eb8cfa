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
source reports/issue-11-2026-12-02/serve-in-background.sh
CAND=/work/main/reports/issue-11-2026-12-04/candidate4-adapter CAND_NAME=cand4 serve_in_background "$OUT/serve-cand4.log"
.venv/bin/python -m benchmarks.rescore_same_answers "$REC" --base-url "$URL" \
  --reference cand4 --strategy periodic:32 --label "cand6-vs-cand4-$DAY-dev"
