"""Test set-up: float64 available everywhere (tests isolate algorithms in float64), CPU only unless
``JAXPM_TEST_ON_GPU`` is set (then JAX picks its default platform, e.g. the GPU).

The tests of the distributed engine (``tests/sharded/``) need 8 CPU devices, which must be requested
before jax is imported; they run in their own pytest process, started by ``tests/test_sharded_suite.py``
(or directly: ``JAXPM_TEST_DEVICES=8 python -m pytest tests/sharded``).
"""

import os
import tempfile

# One persistent compilation cache for the whole run: many tests compile the same programs (the CLI's
# small default run, the sampler pieces of each Runner). The first process to load this file (pytest
# itself, before it starts its workers) makes the folder; its workers and the subprocesses that the
# CLI, multi-process and sharded tests start inherit it through the environment, and that first
# process removes it at the end. JAXPM_TEST_CACHE=0 turns it off; a JAX_COMPILATION_CACHE_DIR already
# set is used as it is (and kept).
_OWN_CACHE = None
if os.environ.get("JAXPM_TEST_CACHE", "1") != "0" and "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _OWN_CACHE = tempfile.mkdtemp(prefix="jaxpm-test-cache-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _OWN_CACHE
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")

os.environ.setdefault("JAX_PLATFORMS", "cpu") if os.environ.get("JAXPM_TEST_ON_GPU") is None else None
if os.environ.get("JAXPM_TEST_ON_GPU") is not None:
    # pytest-xdist runs several workers on the one GPU: JAX's default preallocation (75 % of the card
    # per process) leaves the second worker none ("CUDA_ERROR_OUT_OF_MEMORY" while collecting).
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
if os.environ.get("JAXPM_TEST_DEVICES"):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               f" --xla_force_host_platform_device_count={int(os.environ['JAXPM_TEST_DEVICES'])}")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

# the sharded tests only in a process that has the devices for them
collect_ignore = [] if os.environ.get("JAXPM_TEST_DEVICES") else ["sharded"]


# The files whose tests run for minutes in subprocesses go first: `make test` keeps this order
# (pytest-xdist's --no-loadscope-reorder; by default it sorts files by their number of tests, which puts
# the one-test, 4-minute sharded suite last, where it ran alone at the end of the run).
_FIRST = ("test_sharded_suite.py", "test_multiprocess.py", "test_restart.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(_FIRST)))  # stable: file order otherwise kept


def pytest_sessionfinish(session, exitstatus):
    if _OWN_CACHE is not None:
        import shutil

        shutil.rmtree(_OWN_CACHE, ignore_errors=True)
