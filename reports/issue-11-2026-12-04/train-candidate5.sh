#!/usr/bin/env bash
# The fifth candidate (prepared 2026-12-04 23:40; ran 2026-12-06 00:29 UTC with MINUTES=60 on a 2-core AMD EPYC, results:
# ../issue-11-2026-12-06/README.md): the fourth candidate (candidate4-adapter/, 0.20
# epoch, not shipped: its dev intervals contained 0) warm-started again, with everything else as for the fourth
# (train-candidate4.sh: all 2,003 questions sha-checked, 900-step schedule, --max-minutes ${MINUTES:-100}), seed 4.
# The trainer first spends 10-17 min on its dev metrics; no server may run meanwhile. Selection rule: README.md here.
set -euo pipefail
cd "$(dirname "$0")"
RUN=runs/train-2026-12-05 INIT=reports/issue-11-2026-12-04/candidate4-adapter SEED=4 exec bash train-candidate4.sh
