#!/usr/bin/env bash
# The sixth candidate (prepared 2026-12-06, not yet run): lever 6's label-noise test. Candidate 4's recipe
# exactly (train-candidate4.sh: the shipped default warm-started, seed 3, 900-step schedule, stopped at step
# 875 as candidate 4 was, so the two differ only in their data) on the same 2,003 questions of
# data_builds/smollm2-2026-12-01, except that every multiple-choice question the --commit-choices rebuild
# (data_builds/smollm2-2026-12-06-commit) holds replaces its old row: same question, same seed, labels of the
# committed answers. Questions not rebuilt yet keep their old row. The mixed file's sha256 is printed and lands
# in the adapter's manifest. About 85 min of steps + 10-17 min of dev metrics before and after on 2 cores; no
# server may run meanwhile. Judge with the pre-registered rule (../issue-11-2026-12-04/README.md):
#   NAME=cand6 DAY=<date> bash reports/issue-11-2026-12-04/eval-candidate4.sh runs/train-cand6/adapter
# and compare with candidate 4 on the same dev answers (the lever's effect).
set -euo pipefail
cd "$(dirname "$0")/../.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
RUN=${RUN:-runs/train-cand6}
DATA=$RUN/train-2003-commit.jsonl
mkdir -p "$RUN"
.venv/bin/python - "$DATA" <<'PY'
import gzip, json, sys
new = {}
with gzip.open("data_builds/smollm2-2026-12-06-commit/train.jsonl.gz", "rt", encoding="utf-8") as fh:
    for line in fh:
        if line.strip():
            row = json.loads(line)
            new[row["key"]] = line if line.endswith("\n") else line + "\n"
replaced = total = 0
with gzip.open("data_builds/smollm2-2026-12-01/train.jsonl.gz", "rt", encoding="utf-8") as fh, open(sys.argv[1], "w", encoding="utf-8") as out:
    for line in fh:
        if total == 2003:
            break
        if not line.strip():
            continue
        total += 1
        key = json.loads(line)["key"]
        replaced += key in new
        out.write(new.get(key, line))
print(f"{total} questions, {replaced} multiple-choice rows from the --commit-choices rebuild")
PY
sha256sum "$DATA"
INIT_COPY=$RUN/init-default
rm -rf "$INIT_COPY" && cp -r finece_guard/adapters_data/SmolLM2-135M-Instruct "$INIT_COPY"
.venv/bin/finece-guard train "$DATA" --out "$RUN/adapter" \
  --init-adapter "$INIT_COPY" --forgery-rate 0.5 --forgery-set varied \
  --dev-fraction 0.06 --epochs 2 --max-steps 900 --stop-at-step 875 --lr 1e-4 --batch-size 8 \
  --max-length 384 --group-by-length --bf16 --seed 3
