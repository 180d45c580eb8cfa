#!/usr/bin/env bash
# Dev-partition eval of the default adapter, extended from 25 to 75 questions per task (resumable; seeded with
# the 125 records of reports/issue-11-2026-12-02/records-dev.jsonl.gz, made by the same adapter weights).
cd /work/main
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec .venv/bin/finece-guard eval --out runs/eval-dev-75 \
  --tasks sciq+passage,sciq,arc_easy,arc_challenge,nq_open --limit 75 --partition dev \
  --concurrency 4 --seed 0 --sc-n 0 --quiet --no-plots --base-url http://127.0.0.1:8021/v1
