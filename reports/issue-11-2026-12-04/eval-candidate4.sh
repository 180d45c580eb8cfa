#!/usr/bin/env bash
# Dev-first selection of the fourth candidate (2026-12-04): one server (bf16, as the reference scores were) with
# the shipped adapter ("finece") and the candidate ("$NAME", default cand4); the shipped adapter's scores of the eval answers
# (the committed ../issue-11-2026-12-03b/records-{dev,test}.rescored-cand2.jsonl.gz: dev 354 answers, test 250)
# are re-scored by the candidate on the same answers; then the gating curve's 150 saved SciQ answers
# (benchmarks/results/gating_curve_default-2026-12-03.json) are scored by the candidate too, and FineCE+ is
# refit on the candidate's dev scores. Usage: [NAME=cand4] [DAY=2026-12-04] eval-candidate4.sh [ADAPTER_DIR] [WAIT_PID]
# (a later candidate: NAME=cand5 DAY=<its day> eval-candidate4.sh runs/train-2026-12-05/adapter)
set -euo pipefail
cd "$(dirname "$0")/../.."
ADAPTER=${1:-/work/main/runs/train-2026-12-04/adapter}
WAIT_PID=${2:-}
NAME=${NAME:-cand4}
DAY=${DAY:-2026-12-04}
OUT=runs/$NAME-$DAY
URL=http://127.0.0.1:8021/v1
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
if [[ -n "$WAIT_PID" ]]; then while kill -0 "$WAIT_PID" 2>/dev/null; do sleep 20; done; fi
test -f "$ADAPTER/adapter_model.safetensors" || { echo "no adapter in $ADAPTER" >&2; exit 1; }
for p in dev test; do
  test -f "$OUT/records-$p.jsonl" || gunzip -c "reports/issue-11-2026-12-03b/records-$p.rescored-cand2.jsonl.gz" >"$OUT/records-$p.jsonl"
done
source reports/issue-11-2026-12-02/serve-in-background.sh
CAND="$ADAPTER" CAND_NAME="$NAME" serve_in_background "$OUT/serve.log"
echo "$SERVER" >"$OUT/serve.pid"
for p in dev test; do
  .venv/bin/python -m benchmarks.rescore_same_answers "$OUT/records-$p.jsonl" --base-url "$URL" \
    --reference "$NAME" --strategy periodic:32 --label "default-vs-$NAME-$DAY-$p"
done
.venv/bin/python -m benchmarks.gating_curve --base-url "$URL" --from-json benchmarks/results/gating_curve_default-2026-12-03.json \
  --rescore-missing --model "finece,$NAME" --label "default-vs-$NAME-$DAY"
kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; trap - EXIT
.venv/bin/python -m benchmarks.fusion_fit --dev "$OUT/records-dev.rescored-$NAME.jsonl" \
  --test "$OUT/records-test.rescored-$NAME.jsonl" --strategy periodic:32 --label "$NAME-$DAY-dev354"
