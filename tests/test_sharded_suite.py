"""Runs the distributed-engine tests (``tests/sharded``) in a pytest process with 8 CPU devices.

The device count must be fixed before jax is imported, so these tests cannot share this process.
"""

import re
import signal
import subprocess
import sys

import jax
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
    if proc.returncode == -signal.SIGSEGV and jax.__version_info__[:2] >= (0, 11):
        _xfail_on_compiler_crash(proc.stdout + proc.stderr)
    assert proc.returncode == 0, tail


def _xfail_on_compiler_crash(out: str):
    """jax 0.11.2's XLA CPU compiler (the GPU host's image) segfaulted twice (2026-12-07), compiling a
    different sharded program each time (tests/sharded/test_inference_sharded.py, then test_layout.py
    after test_invariance.py had passed): an upstream crash that takes the process down. Reported as an
    expected failure naming the test that crashed, and only if no test failed before it; jax 0.10.2 (CI)
    runs the whole suite."""
    # pytest -q's progress characters: whole lines (with a percentage), and the last one cut by the crash
    marks = (re.match(r"([.sFExX]+)(?= *\[ *\d+%\]$|$|Fatal Python error)", line) for line in out.splitlines())
    progress = "".join(m.group(1) for m in marks if m)
    assert not re.search(r"[FE]", progress), out[-6000:]
    site = re.search(r'(tests/sharded/\w+\.py)", line \d+ in (test_\w+)', out)
    where = f"{site.group(1)}::{site.group(2)}" if site else "an unknown test"
    pytest.xfail(f"XLA's CPU compiler (jax {jax.__version__}) segfaulted compiling {where}, after "
                 f"{progress.count('.')} sharded tests passed")
