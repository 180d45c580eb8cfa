# Sourced (not run) by the issue-11 eval scripts: `serve_in_background LOG [SERVE_SCRIPT]` starts SERVE_SCRIPT
# (default reports/issue-11-2026-12-02/serve.sh; its CAND/CAND_NAME/DTYPE from the caller's environment) in the
# background, sets SERVER to its PID, stops it on EXIT, and returns once http://127.0.0.1:8021/v1/models answers
# (exits 1 if it does not within 10 minutes).
serve_in_background() {
  bash "${2:-reports/issue-11-2026-12-02/serve.sh}" >"$1" 2>&1 &
  SERVER=$!
  trap 'kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true' EXIT
  local url=http://127.0.0.1:8021/v1/models
  for _ in $(seq 120); do curl -sf "$url" >/dev/null && return 0; sleep 5; done
  echo "server did not start (log: $1)" >&2
  exit 1
}
