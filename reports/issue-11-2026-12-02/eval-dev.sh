#!/usr/bin/env bash
# Dev-partition (fusion fit) eval of the 2026-12-01 candidate (served as `cand`), resumable: re-run the same command.
cd /work/main
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 FINECE_SCORER_MODEL=cand
exec .venv/bin/finece-guard eval --out runs/issue11-2026-12-02/eval-cand-dev \
  --tasks sciq+passage,sciq,arc_easy,arc_challenge,nq_open --limit 25 --partition dev \
  --concurrency 4 --seed 0 --sc-n 0 --quiet --no-plots --base-url http://127.0.0.1:8021/v1
