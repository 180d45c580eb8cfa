#!/usr/bin/env bash
# The whole forgery table (all payload rows, 40 answers) of the shipped default as served, on an fp32 server:
# benchmarks/results/forgery_injection_default-<DAY>-float32-all.{md,json}. About 30 min on 2 cores.
# Usage: [DAY=2026-12-07] forgery-all.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
DAY=${DAY:-2026-12-07}
mkdir -p runs
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
source reports/issue-11-2026-12-02/serve-in-background.sh
DTYPE=float32 serve_in_background runs/serve-forgery-all.log reports/issue-11-2026-12-06b/serve.sh
.venv/bin/python -m benchmarks.forgery_injection --base-url http://127.0.0.1:8021/v1 --label "default-$DAY-float32-all"
