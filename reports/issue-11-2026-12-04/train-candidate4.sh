#!/usr/bin/env bash
# The fourth candidate (ran 2026-12-04 21:25-23:20 UTC with MINUTES=85; README.md here has its results): the shipped default adapter warm-started on all
# 2,003 questions of the committed build (data_builds/smollm2-2026-12-01, sha256 below; 1,316 questions the
# default never saw, ARC-Challenge and CSQA among them), half a forged twin per answer state from the varied
# payload set, a 900-step schedule (about 95 minutes of steps at 6.4 s/step on 2 cores; --max-minutes stops it
# earlier and still writes the adapter), seed 3. --dev-fraction 0.06 as for the third candidate: the trainer's
# dev questions never include one the default trained on. No server may run meanwhile. Selection rule:
# README.md in this folder (written before this candidate exists).
set -euo pipefail
cd "$(dirname "$0")/../.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
# RUN, INIT, OUT, SEED, MINUTES: overridable for a continuation (train-candidate5.sh); defaults as it ran
RUN=${RUN:-runs/train-2026-12-04}
DATA=$RUN/train-2003.jsonl
mkdir -p "$(dirname "$DATA")"
gunzip -c data_builds/smollm2-2026-12-01/train.jsonl.gz | head -n 2003 >"$DATA"
echo "51c5b6936938fc0fa759ee5dceb39942c482c0e9f1932b8b0c8c59882a4ae937  $DATA" | sha256sum -c -
INIT_COPY=$RUN/init-default
rm -rf "$INIT_COPY" && cp -r "${INIT:-finece_guard/adapters_data/SmolLM2-135M-Instruct}" "$INIT_COPY"
.venv/bin/finece-guard train "$DATA" --out "${OUT:-$RUN/adapter}" \
  --init-adapter "$INIT_COPY" --forgery-rate 0.5 --forgery-set varied \
  --dev-fraction 0.06 --epochs 2 --max-steps 900 --max-minutes "${MINUTES:-100}" --lr 1e-4 --batch-size 8 \
  --max-length 384 --group-by-length --bf16 --seed "${SEED:-3}"
