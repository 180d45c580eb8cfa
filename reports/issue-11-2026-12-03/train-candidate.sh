#!/usr/bin/env bash
# The 2026-12-03 candidate: the shipped default adapter warm-started on the 687-question build
# (data_builds/smollm2-2026-12-01 at commit 9e9bda7), half a forged twin per answer state from the
# varied payload set, 260 steps (the whole schedule). 2-core AMD EPYC AVX-512-BF16: 1,819 s of steps
# (7.0 s/step), 3,048 s in all. No server may run meanwhile (it would compete for the cores).
set -euo pipefail
cd "$(dirname "$0")/../.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
DATA=runs/data-2026-12-01/train.jsonl
mkdir -p "$(dirname "$DATA")"
gunzip -c data_builds/smollm2-2026-12-01/train.jsonl.gz | head -n 687 >"$DATA.snapshot"
echo "c776572e5bf90045f6d14081c1e03c4603219e56db987cbcb4d52d404ef8f47b  $DATA.snapshot" | sha256sum -c -
# OUT, INIT, STEPS and SEED are set by the second candidate's script (../issue-11-2026-12-03b/).
.venv/bin/finece-guard train "$DATA.snapshot" --out "${OUT:-runs/train-2026-12-03/adapter}" \
  --init-adapter "${INIT:-finece_guard/adapters_data/SmolLM2-135M-Instruct}" --forgery-rate 0.5 --forgery-set varied \
  --epochs 2 --max-steps "${STEPS:-260}" --max-minutes 62 --lr 1e-4 --batch-size 8 --max-length 384 \
  --group-by-length --bf16 --seed "${SEED:-0}"
