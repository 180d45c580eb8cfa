#!/usr/bin/env bash
# The multiple-choice questions of data_builds/smollm2-2026-12-01 again, with --commit-choices
# (finece_guard.data.choice_commit): every sample that names no readable option gets "\nAnswer: " and one
# letter under a structured_outputs choice constraint, so its label is that of the letter the model commits
# to instead of "wrong". Same settings and seed as that build (the same questions in the same order), so the
# two builds compare question by question. Resumable: re-run this same command; LIMIT can only grow.
# Needs a server on 127.0.0.1:8021 (reports/issue-11-2026-12-02/serve.sh) and, meanwhile, nothing else on the cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
mkdir -p runs/data-2026-12-06-commit
exec .venv/bin/finece-guard build-data --out runs/data-2026-12-06-commit/train.jsonl \
  --tasks ${TASKS:-sciq_mc,arc_easy,arc_challenge,csqa} --partition train --limit ${LIMIT:-600} \
  --k 8 --levels 2 --max-clusters 2 --concurrency ${CONC:-5} --seed 0 --quiet --commit-choices \
  --base-url http://127.0.0.1:8021/v1
