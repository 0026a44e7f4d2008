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

# Two pytest workers, one test file each at a time, in the order tests/conftest.py gives (subprocess-heavy
# files first), with the run-wide compilation cache of tests/conftest.py: most of a test's time is XLA
# compilation, which is single-threaded. Measured on the 2-core VM, 2026-12-02: one worker 27.8 min; two
# workers 14.9, 19.4 (xdist's own file order) and 18.7 min (this order); --dist worksteal 18.0 min.
# The spread is the VM's (user time 26-33 min). Later the suite grew to 26.8 min (2026-12-07, two workers);
# after moving ~460 s of heavier siblings to -m slow, 20.0 min (user time 37.7 min); 2026-12-07 23:05, after two
# more sharded cases and the adjoint finite-difference test went to -m slow, 15.4 min (user 28.2 min; the
# sharded suite's subprocess 274 s of it), and 18.6 min (user 34.4 min) in a second run with four more
# sampler tests: the VM's spread is ~20 %. TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2

test: $(STAMP)
	$(PY) -m pytest -q -m "not slow" $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder) $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)
