#!/usr/bin/env bash
cd /work/main
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec .venv/bin/finece-guard train runs/data-2026-12-01/train-snapshot.jsonl --out runs/adapter-2026-12-01 \
  --init-adapter finece_guard/adapters_data/SmolLM2-135M-Instruct --forgery-rate 1.0 --epochs 2 --lr 1e-4 \
  --batch-size 8 --max-length 384 --group-by-length --bf16 --max-minutes ${MINUTES:-24} --seed 0
