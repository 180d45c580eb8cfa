#!/usr/bin/env bash
# One server for the session's issue-11 compute: generator + shipped adapter (finece) + a candidate (cand):
# the 2026-12-01 one, or the adapter folder in $CAND (served as $CAND_NAME, default "cand"); $DTYPE (default
# bfloat16, as every candidate was selected on; float32 for scores that repeat to the digit).
CAND=${CAND:-/work/main/reports/issue-11-2026-12-01/candidate-adapter}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1 VLLM_CPU_KVCACHE_SPACE=4
exec /work/main/.venv-vllm/bin/python -m vllm.entrypoints.openai.api_server \
  --model /root/.cache/finece_guard/models/SmolLM2-135M-Instruct --served-model-name smollm2-135m-instruct \
  --host 127.0.0.1 --port 8021 --dtype "${DTYPE:-bfloat16}" --max-model-len 2048 --max-logprobs 20 \
  --scheduling-policy priority --no-enable-chunked-prefill --enable-lora --max-lora-rank 8 --max-loras 2 \
  --lora-modules finece=/work/main/finece_guard/adapters_data/SmolLM2-135M-Instruct \
                 "${CAND_NAME:-cand}=$CAND" \
  --lora-target-modules v_proj q_proj k_proj o_proj
