# Two commands for a newcomer: `make demo` and `make test`. Both install what is missing first.
SHELL := /bin/bash
export FINECE_VLLM_PYTHON ?= $(CURDIR)/.venv-vllm/bin/python
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
PY := .venv/bin/python

.PHONY: setup demo test unit integration lint bench clean

setup:
	@bash scripts/setup.sh

demo: setup
	.venv/bin/finece-guard demo

lint: setup
	.venv/bin/ruff check finece_guard tests benchmarks
	.venv/bin/mypy

# pytest exit code 5 (no tests collected) is a failure, not a pass
test: setup lint
	@$(PY) -m pytest tests -p no:cacheprovider; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi; exit $$rc

unit: setup
	$(PY) -m pytest tests/unit -q -p no:cacheprovider

integration: setup
	$(PY) -m pytest tests/integration -p no:cacheprovider

# every benchmark against one vLLM server -> benchmarks/results/*.{json,md} and SUMMARY.md (not part of CI)
bench: setup
	$(PY) -m benchmarks.run_all $(BENCH_ARGS)

clean:
	rm -rf .venv .venv-vllm *.egg-info
