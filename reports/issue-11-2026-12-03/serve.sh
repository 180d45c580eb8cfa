#!/usr/bin/env bash
# The server of 2026-12-02 (generator + shipped adapter "finece"), with the 2026-12-03 candidate as "cand".
CAND=/work/main/reports/issue-11-2026-12-03/candidate-adapter exec bash "$(dirname "$0")/../issue-11-2026-12-02/serve.sh"
