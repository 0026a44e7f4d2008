"""Runs the distributed-engine tests (``tests/sharded``) in a pytest process with 8 CPU devices.

The device count must be fixed before jax is imported, so these tests cannot share this process.
"""

import subprocess
import sys

import pytest

from helpers import REPO, multiprocess_env


@pytest.mark.parametrize("marker", ["not slow", pytest.param("slow", marks=pytest.mark.slow)])
def test_sharded_suite(marker):
    """``make test`` runs the sharded tests not marked slow, ``make test-slow`` the slow ones."""
    # 8 fake CPU devices by design, also when the outer suite runs on a GPU (multiprocess_env drops
    # JAXPM_TEST_ON_GPU and pins the CPU); the multi-GPU runs are benchmarks/bench_distributed.py's
    env = multiprocess_env(8, JAXPM_TEST_DEVICES="8")
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", marker, "tests/sharded"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=1500)
    tail = (proc.stdout + proc.stderr)[-6000:]
    print(tail)
    if proc.returncode == 5:  # nothing selected by this marker
        pytest.skip(f"no sharded tests match -m {marker!r}")
    assert proc.returncode == 0, tail
