# rqvae-ids: `make demo` and `make test` work on a fresh machine with only Python 3.11.
# torch is installed first, from TORCH_SPEC (CPU build by default), so that the
# project's torch range is already satisfied and pip never pulls a CUDA build.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false

.PHONY: setup demo test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[test,fast]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/rqvae-ids demo

test: $(STAMP)
	$(PY) -m pytest

clean:
	rm -rf $(VENV) out .pytest_cache
