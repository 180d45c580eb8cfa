#!/usr/bin/env bash
# Resumable: re-run this same command; finished questions in train.jsonl are skipped.
# LIMIT (questions per task) can only grow: a larger limit extends the smaller one's selection.
# 21:57-22:25 ran with concurrency 12 and +triviaqa,mmlu (dropped at 22:33: 0% sampled accuracy / 29% unreadable on the first questions).
cd /work/main
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec .venv/bin/finece-guard build-data --out runs/data-2026-12-01/train.jsonl \
  --tasks ${TASKS:-sciq+passage,sciq_mc,arc_easy,csqa,sciq} --partition train --limit ${LIMIT:-400} \
  --k 8 --levels 2 --max-clusters 2 --concurrency ${CONC:-5} --seed 0 --quiet \
  --base-url http://127.0.0.1:8021/v1
