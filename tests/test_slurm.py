"""A real SLURM job: ``sbatch --wait`` of slurm/ci_simulate.sbatch with 2 tasks x 4 CPU devices, whose
outputs must equal a one-process run of the same simulation.

Needs a running SLURM (CI brings up a one-node cluster with ``.ci/start_slurm.sh`` before ``make
test``); without one the test is skipped with the reason.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid

import numpy as np
import pytest
from helpers import REPO, multiprocess_env

SCRIPT = REPO / "slurm" / "ci_simulate.sbatch"
HOW = "bring one up with `sudo .ci/start_slurm.sh` (CI does this before `make test`)"


def _slurm_ready() -> str | None:
    """None if a node is idle, else why the test cannot run."""
    for tool in ("sbatch", "sinfo", "scancel"):
        if shutil.which(tool) is None:
            return f"SLURM not installed ({tool} not found): {HOW}"
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%T %c"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return f"sinfo did not answer within 20 s (slurmctld down?): {HOW}"
    states = out.stdout.split()
    if out.returncode != 0:
        return f"sinfo failed ({out.stderr.strip()[:200]}): {HOW}"
    if not any(s.startswith(("idle", "mixed")) for s in states[::2]):
        return f"no idle SLURM node (sinfo: {out.stdout.strip() or 'nothing'}): {HOW}"
    if max((int(c) for c in states[1::2] if c.isdigit()), default=0) < 2:
        return "the SLURM node has fewer than 2 CPUs (the job needs 2 tasks)"
    return None


def test_sbatch_two_tasks_equals_one_process(tmp_path):
    reason = _slurm_ready()
    if reason:
        pytest.skip(reason)
    sim = ["--particles", "16", "--steps", "2", "--z", "1,0", "--quiet"]
    name = f"jaxpm-ci-{uuid.uuid4().hex[:8]}"
    env = multiprocess_env(1, JAXPM_PYTHON=sys.executable, JAXPM_CPU_DEVICES=4, JAXPM_DISTRIBUTED_TIMEOUT=120)
    env.pop("XLA_FLAGS")  # the job script sets the device count of each task
    log = tmp_path / "job.out"
    cmd = ["sbatch", "--wait", "--job-name", name, "--ntasks", "2", "--cpus-per-task", "1", "--time", "00:06:00",
           "--output", str(log), "--chdir", str(tmp_path), str(SCRIPT), *sim, "--out", str(tmp_path / "slurm")]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=420)
    except subprocess.TimeoutExpired:
        subprocess.run(["scancel", "--name", name], timeout=30)
        pytest.fail(f"sbatch --wait did not return within 420 s; job cancelled. Log:\n{_tail(log)}")
    assert proc.returncode == 0, f"job failed ({proc.returncode}): {proc.stderr}\n{_tail(log)}"

    one = tmp_path / "one"
    ref = subprocess.run([sys.executable, "-m", "jaxpm", "simulate", *sim, "--out", str(one), "--distributed", "none"],
                         env=multiprocess_env(1), capture_output=True, text=True, timeout=300)
    assert ref.returncode == 0, ref.stderr[-3000:]

    two = tmp_path / "slurm"
    s1, s2 = (json.loads((d / "summary.json").read_text()) for d in (one, two))
    assert s2["device"]["processes"] == 2 and s2["device"]["count"] == 8, s2["device"]
    assert len(s1["outputs"]) == len(s2["outputs"]) == 2
    for o1, o2 in zip(s1["outputs"], s2["outputs"]):
        a, b = np.load(one / o1["file"]), np.load(two / o2["file"])
        assert a.shape == b.shape == (16, 16, 16)
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5 * np.abs(a).max())
        np.testing.assert_allclose(o2["pk"], o1["pk"], rtol=1e-5)
    # float32 FFTs split over devices round differently: 1e-5 of the field's largest value
    ic1 = np.load(one / "ic_linear.npy")
    np.testing.assert_allclose(np.load(two / "ic_linear.npy"), ic1, rtol=1e-5, atol=1e-5 * np.abs(ic1).max())


def _tail(path, n=4000):
    try:
        return path.read_text()[-n:]
    except OSError:
        return "(no job log)"
