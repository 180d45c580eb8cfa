#!/usr/bin/env bash
# The second 2026-12-03 candidate: the first candidate (reports/issue-11-2026-12-03/candidate-adapter,
# itself the shipped default plus 260 steps) trained on for another 480 steps on the same
# 687-question build, with seed 1 so that its batches are not the first candidate's batches again.
# Otherwise the first candidate's script and settings. No server may run meanwhile.
cd "$(dirname "$0")/../.."
OUT=runs/train-2026-12-03b/adapter INIT=reports/issue-11-2026-12-03/candidate-adapter STEPS=480 SEED=1 \
  exec bash reports/issue-11-2026-12-03/train-candidate.sh
