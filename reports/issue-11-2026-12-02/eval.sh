#!/usr/bin/env bash
# Test-partition eval of the 2026-12-01 candidate (served as `cand`), resumable: re-run the same command.
cd /work/main
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 FINECE_SCORER_MODEL=cand
exec .venv/bin/finece-guard eval --out runs/issue11-2026-12-02/eval-cand \
  --tasks sciq+passage,sciq,arc_easy,arc_challenge,nq_open --limit 50 --partition test \
  --concurrency 4 --seed 0 --sc-n 5 --quiet --no-plots --base-url http://127.0.0.1:8021/v1
