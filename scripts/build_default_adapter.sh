#!/usr/bin/env bash
# Reproduce the committed default FineCE adapter for SmolLM2-135M-Instruct, end to end, on CPU:
#   1. Monte-Carlo confidence data (paper Alg. 1) on the train partitions of five tasks,
#   2. LoRA training on it,
#   3. evaluation on the test partitions of ARC-Easy and SciQ against the untrained adapter and the
#      baselines on the same answers (recalibration fitted on the dev partitions).
# Every step is resumable: re-run the script after an interruption and it continues.
# Wall times on a 2-core AMD EPYC (AVX-512) are in finece_guard/adapters_data/SmolLM2-135M-Instruct/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
RUN=${RUN:-runs/default-adapter}
ADAPTER=finece_guard/adapters_data/SmolLM2-135M-Instruct
mkdir -p "$RUN"
fg=.venv/bin/finece-guard

# 1. data: 40 train questions from each task, k=6 samples per state, T=2 levels, m<=2 clusters
$fg build-data --out "$RUN/train.jsonl" --tasks arc_easy,sciq_mc,sciq+passage,sciq,csqa --limit 40 \
  --k 6 --levels 2 --max-clusters 2 --concurrency 4 --seed 0 --quiet

# 2. training (no server needed; stop any running one first, it competes for the cores)
$fg train "$RUN/train.jsonl" --out "$ADAPTER" ${TRAIN_ARGS:---epochs 1 --max-steps 150 --lr 2e-4 --batch-size 8 --max-length 384 --seed 0}

# 3. evaluation on the test partitions; fits the recalibrator on dev and saves it next to the adapter
$fg eval --out "$RUN/eval" --tasks arc_easy,sciq ${EVAL_ARGS:---limit 120 --dev-limit 40} --fit-recalibration \
  --compare-adapter untrained --concurrency 4 --seed 0
