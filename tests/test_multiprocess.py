"""Several devices and several processes: start-up, sharded files, distributed P(k), the CLI.

Everything runs in subprocesses (the device count is fixed when jax starts, and this pytest process
already imported jax with one device): 1 process x 8 CPU devices, and 2 processes x 4 CPU devices
launched by ``mpiexec`` (the mpich wheel's, next to this Python) or by hand with an explicit
coordinator on 127.0.0.1. Every subprocess has a timeout, so nothing hangs CI.
References are independent: known arrays, and one-device results computed here.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import multiprocess_env as _env

SCRIPTS = Path(__file__).resolve().parent / "scripts"
MPIEXEC = Path(sys.executable).parent / "mpiexec"
TIMEOUT = 180


def _run(cmd, env, timeout=TIMEOUT, cwd=None):
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd)
    assert proc.returncode == 0, f"{cmd} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-4000:]}"
    return proc.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _have_mpi():
    if not MPIEXEC.exists():
        return False
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return True


needs_mpi = pytest.mark.skipif(not _have_mpi(), reason=f"no {MPIEXEC} or mpi4py (pip install -e '.[distributed]')")


def _launch(kind: str, args: list, timeout=TIMEOUT) -> str:
    """Run ``python args...`` as 1x8 ("single"), 2x4 under mpiexec ("mpi") or 2x4 by hand ("coordinator")."""
    if kind == "single":
        return _run([sys.executable, *args], _env(8), timeout)
    if kind == "mpi":
        return _run([str(MPIEXEC), "-n", "2", sys.executable, *args], _env(4), timeout)
    port = _free_port()
    procs = [subprocess.Popen([sys.executable, *args], env=_env(4, JAXPM_COORDINATOR=f"127.0.0.1:{port}",
                                                                JAXPM_NUM_PROCESSES=2, JAXPM_PROCESS_ID=r),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in (1, 0)]
    outs = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=timeout)
            assert p.returncode == 0, f"{args} exited {p.returncode}\nstdout:\n{out}\nstderr:\n{err[-4000:]}"
            outs.append(out)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return "".join(outs)


LAUNCHES = ["single", pytest.param("mpi", marks=needs_mpi), "coordinator"]


# -- (i) start-up and (ii) sharded files ------------------------------------------------------------------
@pytest.mark.parametrize("kind", LAUNCHES)
def test_shardio_every_process_writes_its_shards(kind, tmp_path):
    """Known arrays of several shardings written by all processes into plain .npy files and read back
    (with another sharding) in every process; checkpoints saved twice and reloaded; refusals of overwrite."""
    method = {"single": "auto", "mpi": "auto", "coordinator": "auto"}[kind]  # auto must detect each launch
    out = _launch(kind, [str(SCRIPTS / "shardio_worker.py"), str(tmp_path), method])
    n = 1 if kind == "single" else 2
    expected_method = {"single": "none", "mpi": "mpi", "coordinator": "coordinator"}[kind]
    for rank in range(n):
        assert f"SHARDIO OK process {rank}/{n}" in out
        assert f"INFO method={expected_method} index={rank} count={n} local={8 // n} global=8" in out, out
    # independent check here, with plain numpy, of a file written by all processes
    ref = np.arange(8 * 12 * 6).reshape(8, 12, 6).astype(np.float32) * 0.5 + 1  # the worker rewrote it +1
    np.testing.assert_array_equal(np.load(tmp_path / "pencil.npy"), ref)
    assert not list(tmp_path.glob(".*partial*")), "temporary files left behind"


# -- (iii) distributed P(k) -----------------------------------------------------------------------------
def _reference_pk():
    sys.path.insert(0, str(SCRIPTS))
    try:
        import pk_worker
    finally:
        sys.path.remove(str(SCRIPTS))
    from jaxpm.observables import power_spectrum

    field = pk_worker.known_field()
    return {name: power_spectrum(field, pk_worker.BOX, drop_empty=False, **kw)
            for name, kw in {"auto": {}, "cic": {"compensate": "cic"}, "los": {"los": 2, "compensate": "cic"}}.items()}


@pytest.mark.parametrize("kind", ["single", pytest.param("mpi", marks=needs_mpi)])
def test_distributed_power_spectrum_equals_one_device(kind, tmp_path):
    """P(k) of a field sharded P('x','y') over a (2,4) mesh with a pencil FFT as Fourier provider equals
    the one-device rfft estimate to 1e-12 (float64); the compiled program gathers no field-sized array."""
    out = tmp_path / "pk.npz"
    _launch(kind, [str(SCRIPTS / "pk_worker.py"), str(out)])
    got = np.load(out)
    full = 16 * 24 * 32
    for name, ref in _reference_pk().items():
        np.testing.assert_allclose(got[name + "_p"], np.asarray(ref.power), rtol=1e-12, atol=0, err_msg=name)
        np.testing.assert_allclose(got[name + "_k"], np.asarray(ref.k), rtol=1e-12, err_msg=name)
        np.testing.assert_array_equal(got[name + "_n"], np.asarray(ref.n_modes), err_msg=name)
        assert got[name + "_allgather_sizes"].max() <= full // 8, f"{name}: all-gather of {got[name + '_allgather_sizes']}"
        assert got[name + "_n_allreduce"] >= 1, name  # the per-bin sums are reduced across devices


# -- (iv) the command line across processes ----------------------------------------------------------------
@needs_mpi
def test_cli_simulate_two_processes_equals_one(tmp_path):
    """``mpiexec -n 2 python -m jaxpm simulate --distributed mpi`` writes the same fields and P(k) as one process."""
    import json

    args = ["-m", "jaxpm", "simulate", "--particles", "16", "--steps", "2", "--z", "1,0", "--quiet"]
    _run([sys.executable, *args, "--out", str(tmp_path / "one"), "--distributed", "none"], _env(1))
    _run([str(MPIEXEC), "-n", "2", sys.executable, *args, "--out", str(tmp_path / "two"), "--distributed", "mpi"], _env(4))
    one, two = tmp_path / "one", tmp_path / "two"
    s1, s2 = (json.loads((d / "summary.json").read_text()) for d in (one, two))
    assert s2["device"]["processes"] == 2 and s2["device"]["count"] == 8
    for o1, o2 in zip(s1["outputs"], s2["outputs"]):
        a, b = np.load(one / o1["file"]), np.load(two / o2["file"])
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5 * np.abs(a).max())
        np.testing.assert_allclose(o2["pk"], o1["pk"], rtol=1e-5)
    # float32 FFTs split over devices round differently: 1e-5 of the field's largest value
    ic1 = np.load(one / "ic_linear.npy")
    np.testing.assert_allclose(np.load(two / "ic_linear.npy"), ic1, rtol=1e-5, atol=1e-5 * np.abs(ic1).max())
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())


# -- (g) a coordinator that cannot be reached -----------------------------------------------------------------
_INIT = "from jaxpm.distributed import initialize; print(initialize(timeout_s={t}))"


@pytest.mark.parametrize("rank", [1, 0])
def test_unreachable_coordinator_fails_within_timeout(rank):
    """Rank 1 with nobody listening, and rank 0 whose peer never comes: a clear error naming the address,
    within the timeout (plus start-up), instead of hanging."""
    port = _free_port()
    env = _env(1, JAXPM_COORDINATOR=f"127.0.0.1:{port}", JAXPM_NUM_PROCESSES=2, JAXPM_PROCESS_ID=rank)
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", _INIT.format(t=3)], env=env, capture_output=True, text=True, timeout=60)
    elapsed = time.monotonic() - t0
    assert proc.returncode != 0
    assert elapsed < 3 + 20, f"took {elapsed:.1f} s for a 3 s timeout"
    assert f"coordinator_address = '127.0.0.1:{port}'" in proc.stderr, proc.stderr[-2000:]
    assert "within 3 s" in proc.stderr and "Check that" in proc.stderr, proc.stderr[-2000:]


def test_initialize_rejects_bad_arguments_before_starting():
    """Bad arguments name the parameter; one process (no launcher) is a no-op."""
    code = """
from jaxpm import distributed as d
from jaxpm.errors import ConfigError
for kw, name in [(dict(method="nccl"), "distributed"), (dict(method="coordinator", coordinator_address="nohost", num_processes=2, process_id=0), "coordinator_address"),
                 (dict(coordinator_address="h:1", num_processes=2, process_id=2), "process_id"),
                 (dict(coordinator_address="h:1", num_processes=0, process_id=0), "num_processes"),
                 (dict(method="coordinator", coordinator_address="h:1", num_processes=2), "process_id"),
                 (dict(timeout_s=-1), "timeout_s")]:
    try:
        d.initialize(**kw)
    except ConfigError as e:
        assert e.parameter == name, (kw, e)
    else:
        raise AssertionError(kw)
info = d.initialize()
assert info.method == "none" and info.process_count == 1 and info.device_count == 2, info
assert d.initialize() is info and d.is_coordinator()
print("ARGS OK")
"""
    assert "ARGS OK" in _run([sys.executable, "-c", code], _env(2), timeout=60)


def test_detect_method_from_environment():
    from jaxpm.distributed import detect_method

    assert detect_method({}) == "none"
    assert detect_method({"SLURM_STEP_NUM_TASKS": "2", "SLURM_PROCID": "1", "PMI_SIZE": "2"}) == "slurm"
    assert detect_method({"SLURM_NTASKS": "2", "SLURM_PROCID": "0"}) == "none"  # batch script outside srun
    assert detect_method({"SLURM_STEP_NUM_TASKS": "1", "SLURM_PROCID": "0"}) == "none"
    assert detect_method({"PMI_SIZE": "2"}) == "mpi"
    assert detect_method({"OMPI_COMM_WORLD_SIZE": "4"}) == "mpi"
    assert detect_method({"PMI_SIZE": "1"}) == "none"
    assert detect_method({"JAXPM_COORDINATOR": "h:1", "PMI_SIZE": "2"}) == "coordinator"
