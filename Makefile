# `make demo` and `make test` work from a fresh clone: they create .venv, install the
# project into it, then run.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
MODELS ?=

.PHONY: install demo test lint format benchmark gpu-check clean

install: $(STAMP)

$(STAMP): pyproject.toml setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) tools/demo.py --output output/demo --overwrite $(if $(MODELS),--models $(MODELS),)

test: $(STAMP)
	$(PY) -m ruff format --check .
	$(PY) -m ruff check .
	$(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff format --check .
	$(PY) -m ruff check .

format: $(STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

benchmark: $(STAMP)
	$(PY) tools/benchmark.py --quick

# The GPU table (training fp32 / bf16 and GPU busy time, probe features per precision, DDP
# through torchrun on every GPU) and the CPU step-overhead row; a few minutes on one GPU.
# Without a GPU its rows are skipped with the reason.
gpu-check: $(STAMP)
	$(PY) tools/benchmark.py --only gpu --output output/gpu-check --overwrite

clean:
	rm -rf $(VENV) build *.egg-info
