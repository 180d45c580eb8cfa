#!/usr/bin/env bash
# The third 2026-12-03 candidate: the shipped default adapter warm-started on all 1,138 questions of the
# committed build (data_builds/smollm2-2026-12-01, sha256 below; 451 questions the default never saw),
# half a forged twin per answer state from the varied payload set, a 360-step schedule (about 50 minutes
# of steps at 7.8 s/step on 2-core AVX-512-BF16), seed 2 (batches other than the default's).
# --dev-fraction 0.06: the trainer's dev questions are a subset of the default's dev questions (positions
# below 0.1) plus new ones, so no question the default trained on is scored as dev; it also keeps the
# before/after dev pass (which costs minutes per 1,000 states) short. No server may run meanwhile.
set -euo pipefail
cd "$(dirname "$0")/../.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
DATA=runs/train-2026-12-03d/train-1138.jsonl
mkdir -p "$(dirname "$DATA")"
gunzip -c data_builds/smollm2-2026-12-01/train.jsonl.gz | head -n 1138 >"$DATA"
echo "69928093411824300e27a50a271cec88404d47438217006e412d262d0d92c7c5  $DATA" | sha256sum -c -
.venv/bin/finece-guard train "$DATA" --out "${OUT:-runs/train-2026-12-03d/adapter}" \
  --init-adapter "${INIT:-finece_guard/adapters_data/SmolLM2-135M-Instruct}" --forgery-rate 0.5 --forgery-set varied \
  --dev-fraction 0.06 --epochs 2 --max-steps 360 --max-minutes 52 --lr 1e-4 --batch-size 8 --max-length 384 \
  --group-by-length --bf16 --seed 2
