#!/usr/bin/env bash
# One fp32 server for the 2026-12-07 forgery tables: generator + shipped adapter (finece) + a candidate (cand):
# the 2026-12-01 one, or the adapter folder in $CAND (served as $CAND_NAME, default "cand"); $DTYPE defaults to
# float32 here (scores that repeat to the digit; candidates were selected on bfloat16).
DTYPE=${DTYPE:-float32}
CAND=${CAND:-/work/main/reports/issue-11-2026-12-01/candidate-adapter}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1 VLLM_CPU_KVCACHE_SPACE=4
exec /work/main/.venv-vllm/bin/python -m vllm.entrypoints.openai.api_server \
  --model /root/.cache/finece_guard/models/SmolLM2-135M-Instruct --served-model-name smollm2-135m-instruct \
  --host 127.0.0.1 --port 8021 --dtype "${DTYPE:-bfloat16}" --max-model-len 2048 --max-logprobs 20 \
  --scheduling-policy priority --no-enable-chunked-prefill --enable-lora --max-lora-rank 8 --max-loras 2 \
  --lora-modules finece=/work/main/finece_guard/adapters_data/SmolLM2-135M-Instruct \
                 "${CAND_NAME:-cand}=$CAND" \
  --lora-target-modules v_proj q_proj k_proj o_proj
