#!/usr/bin/env bash
# The second 2026-12-03 candidate: the first candidate (reports/issue-11-2026-12-03/candidate-adapter,
# itself the shipped default plus 260 steps) trained on for another 480 steps on the same
# 687-question build, with seed 1 so that its batches are not the first candidate's batches again.
# Same settings otherwise (half a forged twin per answer state from the varied payload set, lr 1e-4,
# whole schedule). No server may run meanwhile (it would compete for the two cores).
set -euo pipefail
cd "$(dirname "$0")/../.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
DATA=runs/data-2026-12-01/train.jsonl
mkdir -p "$(dirname "$DATA")"
gunzip -c data_builds/smollm2-2026-12-01/train.jsonl.gz | head -n 687 >"$DATA.snapshot"
echo "c776572e5bf90045f6d14081c1e03c4603219e56db987cbcb4d52d404ef8f47b  $DATA.snapshot" | sha256sum -c -
.venv/bin/finece-guard train "$DATA.snapshot" --out runs/train-2026-12-03b/adapter \
  --init-adapter reports/issue-11-2026-12-03/candidate-adapter --forgery-rate 0.5 --forgery-set varied \
  --epochs 2 --max-steps 480 --max-minutes 62 --lr 1e-4 --batch-size 8 --max-length 384 --group-by-length \
  --bf16 --seed 1
