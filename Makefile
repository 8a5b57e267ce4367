# Whole set-up on a fresh machine: `make demo` or `make test`.
PYTHON ?= python3
VENV ?= .venv
# The CPU build by default; a GPU user may pass e.g. TORCH_SPEC="torch==2.13.0" with a CUDA index.
TORCH_SPEC ?= torch==2.13.0
PIP_ARGS ?= -q
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test test-fast demo train model-card bench clean

install: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch first and pinned, so nothing later resolves an unpinned (multi-GB) build.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install $(PIP_ARGS) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install $(PIP_ARGS) -e ".[all]"
	touch $(STAMP)

# The files spread over 4 workers: most tests wait on servers, Locust or Prometheus, so 4 keep 2
# cores busy. PYTEST_WORKERS=0 runs them in one process.
PYTEST_WORKERS ?= 4
XDIST := $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist worksteal)

# Bytecode caches are written even where the environment turns them off (PYTHONDONTWRITEBYTECODE):
# otherwise every worker rewrites every test module's asserts, and every server, Locust run and
# command the tests start compiles the harness again, at every run (a third of collection's CPU).
PYTEST := PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest

test: $(STAMP)
	$(PYTEST) -q $(XDIST) $(PYTEST_ARGS)

# The quick loop while editing: every test but those marked slow (real servers, Locust, the gate,
# Prometheus, Chromium, the wheel).
test-fast: $(STAMP)
	$(PYTEST) -q $(XDIST) -m "not slow" $(PYTEST_ARGS)

demo: $(STAMP)
	$(BIN)/harness demo

train: $(STAMP)
	$(BIN)/python -m reference_model.train

model-card: $(STAMP)
	$(BIN)/python -m reference_model.card

bench: $(STAMP)
	for b in benchmarks/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
