# make run  : create .venv if missing, install, run the default simulation
# make test : same set-up, then the test suite (CPU, < 20 min on 2 cores)
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed

.PHONY: run test test-slow install clean-venv

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) -m jaxpm simulate $(ARGS)

# two pytest workers: most of a test's time is XLA compilation, which is single-threaded (27.8 min with
# one worker on the 2-core machine, 2026-12-02; 14.9-19.4 min with two (18.7 with the order below), one file per worker at a time,
# and the run-wide compilation cache of tests/conftest.py, depending on when the 4-minute sharded suite
# started: it now starts first, in the order tests/conftest.py gives; --dist worksteal measured 18.0 min:
# module fixtures ran twice and the cache served less); TEST_WORKERS=0: one process
TEST_WORKERS ?= 2

test: $(STAMP)
	$(PY) -m pytest -q -m "not slow" $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder) $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)
