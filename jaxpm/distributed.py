"""Start-up of multi-process runs (one JAX process per GPU, or several CPU processes).

:func:`initialize` wraps :func:`jax.distributed.initialize` and must run before any JAX computation.
It finds how the processes were launched:

=============  ==================================================================================
method         when ``"auto"`` picks it / what it needs
=============  ==================================================================================
coordinator    ``coordinator_address`` given, or ``JAXPM_COORDINATOR`` set ("host:port" of process
               0); ``num_processes`` / ``process_id`` as arguments or ``JAXPM_NUM_PROCESSES`` /
               ``JAXPM_PROCESS_ID``
slurm          inside an ``srun`` step with more than one task (``SLURM_STEP_NUM_TASKS`` > 1);
               JAX reads the task count, rank and first node from SLURM's variables
mpi            under ``mpiexec``/``mpirun`` with more than one rank (``PMI_SIZE``, ``OMPI_COMM_WORLD_SIZE``
               or ``PMIX_SIZE`` > 1); rank and size come from mpi4py, process 0 picks a free port on
               its host name and broadcasts the address
none           otherwise: one process, nothing to do
=============  ==================================================================================

Connecting is bounded by ``timeout_s``: a process that cannot reach the coordinator (or a
coordinator whose peers never arrive) stops with a message naming the address and what to check,
instead of hanging. XLA aborts the process (uncatchable) when its own connection deadline passes,
so the bound is kept by this module: a TCP probe of the coordinator (processes other than 0, when
the address is known) raises :class:`CoordinatorUnreachable`; a watchdog thread covers the rest of
the hand-shake and ends the process with exit code 2 and the same kind of message.

On CPU, cross-process collectives use gloo (JAX's default on CPU since 0.5).
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from typing import NamedTuple

from .errors import ConfigError

__all__ = ["initialize", "DistributedInfo", "CoordinatorUnreachable", "METHODS", "detect_method",
           "is_coordinator", "process_index", "process_count", "barrier", "log", "on_coordinator"]

METHODS = ("auto", "slurm", "mpi", "coordinator", "none")
DEFAULT_TIMEOUT_S = 120.0
EXIT_UNREACHABLE = 2

_ENV_COORD, _ENV_NPROC, _ENV_PID, _ENV_TIMEOUT = ("JAXPM_COORDINATOR", "JAXPM_NUM_PROCESSES",
                                                  "JAXPM_PROCESS_ID", "JAXPM_DISTRIBUTED_TIMEOUT")
_MPI_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS")


class DistributedInfo(NamedTuple):
    """Where this process stands: ``method`` used, ``process_index`` (0-based) of
    ``process_count``, ``local_device_count`` / ``device_count`` (global), ``coordinator_address``
    ("host:port", or None on one process)."""

    method: str
    process_index: int
    process_count: int
    local_device_count: int
    device_count: int
    coordinator_address: str | None


class CoordinatorUnreachable(ConfigError):
    """This process could not connect to the coordinator within the timeout."""

    def __init__(self, address, process_id, num_processes, timeout_s, reason):
        super().__init__("coordinator_address", address, _advice(address, process_id, num_processes, timeout_s, reason))


_INFO: DistributedInfo | None = None


def _advice(address, process_id, num_processes, timeout_s, reason) -> str:
    if process_id == 0:
        what = (f"process 0 of {num_processes} (the coordinator) was not joined by all other processes within "
                f"{timeout_s:g} s ({reason}). Check that all {num_processes} processes were started, ")
    else:
        who = f"process {process_id} of {num_processes}" if process_id is not None else "this process"
        what = (f"{who} got no connection within {timeout_s:g} s ({reason}). Check that process 0 is running "
                "and reached initialize(), ")
    return ("the host:port of process 0, reachable from every process; " + what + "that the "
            "host name resolves here, that the port is free on process 0 and not blocked by a firewall, and that "
            "all processes were given the same address and process count")


# -- argument checks (before anything starts) ------------------------------------------------------
def _int_arg(name, value, minimum):
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            raise ConfigError(name, value, f"an integer >= {minimum}") from None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(name, value, f"an integer >= {minimum}")
    return value


def _check_address(address) -> tuple[str, int]:
    if not isinstance(address, str) or ":" not in address:
        raise ConfigError("coordinator_address", address, "'host:port', e.g. '10.0.0.1:61234'")
    host, _, port = address.rpartition(":")
    host = host.strip("[]")  # IPv6 literal "[::1]:1234"
    try:
        port = int(port)
    except ValueError:
        port = -1
    if not host or not 1 <= port <= 65535:
        raise ConfigError("coordinator_address", address, "'host:port' with a port 1-65535")
    return host, port


def detect_method(env=None) -> str:
    """The launch method ``"auto"`` resolves to, from the environment only (nothing is started)."""
    env = os.environ if env is None else env
    if env.get(_ENV_COORD):
        return "coordinator"
    if _positive(env.get("SLURM_STEP_NUM_TASKS")) > 1 and "SLURM_PROCID" in env:
        return "slurm"
    if any(_positive(env.get(v)) > 1 for v in _MPI_SIZE_VARS[:3]):
        return "mpi"
    return "none"


def _positive(text) -> int:
    try:
        return int(text)
    except (TypeError, ValueError):
        return 0


# -- public entry point ----------------------------------------------------------------------------
def initialize(method: str = "auto", coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, timeout_s: float | None = None) -> DistributedInfo:
    """Join the other processes of this run (or do nothing on one process); idempotent.

    Args:
        method: "auto" (see the module docstring), "slurm", "mpi", "coordinator" or "none".
        coordinator_address: "host:port" of process 0 (method "coordinator"; default ``$JAXPM_COORDINATOR``).
        num_processes: number of processes (coordinator; default ``$JAXPM_NUM_PROCESSES``).
        process_id: rank of this process, 0..num_processes-1 (coordinator; default ``$JAXPM_PROCESS_ID``).
        timeout_s: seconds allowed to connect (default ``$JAXPM_DISTRIBUTED_TIMEOUT`` or 120).

    Returns:
        :class:`DistributedInfo`. A second call returns the same information without reconnecting.

    Raises:
        ConfigError: bad arguments, or a multi-process start requested after JAX already computed.
        CoordinatorUnreachable: a process other than 0 found no coordinator listening in time.
    """
    global _INFO
    if method not in METHODS:
        raise ConfigError("distributed", method, " or ".join(METHODS))
    if timeout_s is None:
        timeout_s = os.environ.get(_ENV_TIMEOUT, DEFAULT_TIMEOUT_S)
    try:
        timeout_s = float(timeout_s)
    except (TypeError, ValueError):
        raise ConfigError("timeout_s", timeout_s, "a positive number of seconds") from None
    if not timeout_s > 0:
        raise ConfigError("timeout_s", timeout_s, "a positive number of seconds")
    if coordinator_address is not None or method == "coordinator":
        coordinator_address = coordinator_address or os.environ.get(_ENV_COORD)
        if coordinator_address is None:
            raise ConfigError("coordinator_address", None, f"'host:port' of process 0 (argument or ${_ENV_COORD})")
        _check_address(coordinator_address)
    if method == "auto":
        method = "coordinator" if coordinator_address else detect_method()
    if method == "coordinator":
        coordinator_address = coordinator_address or os.environ.get(_ENV_COORD)
        if coordinator_address is None:
            raise ConfigError("coordinator_address", None, f"'host:port' of process 0 (argument or ${_ENV_COORD})")
        if num_processes is None:
            num_processes = os.environ.get(_ENV_NPROC)
        if process_id is None:
            process_id = os.environ.get(_ENV_PID)
        if num_processes is None or process_id is None:
            missing = "num_processes" if num_processes is None else "process_id"
            raise ConfigError(missing, None, f"an integer (argument or ${_ENV_NPROC if missing == 'num_processes' else _ENV_PID}) with method 'coordinator'")
        num_processes = _int_arg("num_processes", num_processes, 1)
        process_id = _int_arg("process_id", process_id, 0)
        if process_id >= num_processes:
            raise ConfigError("process_id", process_id, f"0 <= process_id < num_processes = {num_processes}")

    import jax

    if _INFO is not None:
        return _INFO
    if jax.distributed.is_initialized():  # started by someone else: report it
        _INFO = _info(method if method != "none" else "external", _client_address())
        return _INFO
    if method == "none" or (method == "coordinator" and num_processes == 1):
        _INFO = _info("none", None)
        return _INFO

    try:  # private JAX API; without it jax.distributed.initialize raises its own RuntimeError instead
        from jax._src.xla_bridge import backends_are_initialized
    except ImportError:
        backends_are_initialized = lambda: False  # noqa: E731
    if backends_are_initialized():
        raise ConfigError("distributed", method, "a start before any JAX computation (call jaxpm.distributed."
                          "initialize() first in the program), or 'none'")

    if method == "mpi":
        coordinator_address, num_processes, process_id = _from_mpi()
    elif method == "slurm":
        coordinator_address, num_processes, process_id = _from_slurm()
    _connect(method, coordinator_address, num_processes, process_id, timeout_s)
    _INFO = _info(method, coordinator_address)
    return _INFO


def _from_mpi():
    try:
        from mpi4py import MPI
    except ImportError:
        raise ConfigError("distributed", "mpi", "'mpi' with mpi4py installed (pip install -e '.[distributed]')") from None
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    address = None
    if rank == 0:
        # a port the OS says is free now (JAX's own mpi4py detection hashes the host name, which can collide)
        host = socket.gethostname()
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("", 0))
            address = f"{host}:{s.getsockname()[1]}"
    address = comm.bcast(address, root=0)
    return address, size, rank


def _from_slurm():
    env = os.environ
    try:
        from jax._src.clusters.slurm_cluster import SlurmCluster  # private; only used to name the address
        address = SlurmCluster.get_coordinator_address(None, None)
    except Exception:  # noqa: BLE001  (a JAX change only costs the address in messages)
        address = None
    nproc = _positive(env.get("SLURM_STEP_NUM_TASKS") or env.get("SLURM_NTASKS"))
    pid = env.get("SLURM_PROCID")
    if nproc < 1 or pid is None:
        raise ConfigError("distributed", "slurm", "'slurm' inside an srun step (SLURM_STEP_NUM_TASKS, SLURM_PROCID unset)")
    return address, nproc, int(pid)


def _probe(address, process_id, num_processes, deadline, timeout_s):
    """Wait until something listens at ``address`` (process 0 may start later), or raise."""
    host, port = _check_address(address)
    reason = "no attempt"
    while True:
        try:
            with socket.create_connection((host, port), timeout=max(0.1, min(2.0, deadline - time.monotonic()))):
                return
        except socket.gaierror as exc:
            raise CoordinatorUnreachable(address, process_id, num_processes, timeout_s,
                                         f"host name {host!r} does not resolve: {exc}") from None
        except OSError as exc:
            reason = exc.strerror or str(exc)
        if time.monotonic() >= deadline:
            raise CoordinatorUnreachable(address, process_id, num_processes, timeout_s, f"last attempt: {reason}")
        time.sleep(0.2)


def _connect(method, address, num_processes, process_id, timeout_s):
    import jax

    deadline = time.monotonic() + timeout_s
    if address is not None and process_id != 0:
        _probe(address, process_id, num_processes, deadline, timeout_s)

    def fire():  # XLA would abort with an unhelpful message (or hang up to its own deadline): stop first
        msg = _advice(address or f"(found by {method})", process_id, num_processes, timeout_s,
                      "the hand-shake with the other processes did not complete")
        print(f"jaxpm.distributed: error: invalid coordinator_address = {address!r}: allowed is {msg}",
              file=sys.stderr, flush=True)
        os._exit(EXIT_UNREACHABLE)

    watchdog = threading.Timer(max(0.5, deadline - time.monotonic()), fire)
    watchdog.daemon = True
    watchdog.start()
    try:
        kw = dict(initialization_timeout=int(timeout_s) + 30)  # XLA's own deadline stays behind ours
        if method == "slurm":
            # JAX keeps GPU number SLURM_LOCALID of those visible, right when every task sees all GPUs
            # of its node; with --gpus-per-task=1 SLURM already left one visible GPU: keep that one.
            visible = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
            if len(visible) == 1:
                kw["local_device_ids"] = [0]
            jax.distributed.initialize(cluster_detection_method="slurm", **kw)
        else:
            jax.distributed.initialize(coordinator_address=address, num_processes=num_processes,
                                       process_id=process_id, **kw)
    finally:
        watchdog.cancel()


def _client_address():
    try:
        from jax._src.distributed import global_state
        return global_state.coordinator_address
    except Exception:  # noqa: BLE001
        return None


def _info(method, address) -> DistributedInfo:
    import jax

    return DistributedInfo(method, jax.process_index(), jax.process_count(), jax.local_device_count(),
                           jax.device_count(), address)


# -- helpers for the rest of the code ---------------------------------------------------------------
def process_index() -> int:
    import jax

    return jax.process_index()


def process_count() -> int:
    import jax

    return jax.process_count()


def is_coordinator() -> bool:
    """True on process 0, the one that writes JSON files, figures and logs."""
    return process_index() == 0


def barrier(name: str) -> None:
    """Wait until every process reached the barrier ``name`` (no-op on one process)."""
    if process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def log(*message, file=None, **kw) -> None:
    """``print`` on process 0 only (default stream: stderr, flushed)."""
    if is_coordinator():
        print(*message, file=sys.stderr if file is None else file, flush=True, **kw)


def on_coordinator(fn, max_bytes: int = 16384) -> str:
    """Run ``fn()`` (which returns a str) on process 0 only and return its result on every process.

    For decisions that must be taken once, such as creating the output folder. A ``ConfigError``
    raised by ``fn`` on process 0 is raised on every process, so that all stop together instead of
    the others waiting at the next barrier.
    """
    import json

    if process_count() == 1:
        return fn()
    import numpy as np
    from jax.experimental import multihost_utils

    payload = b""
    if is_coordinator():
        try:
            payload = json.dumps({"ok": fn()}).encode()
        except ConfigError as exc:
            value = exc.value if isinstance(exc.value, (str, int, float, bool, type(None))) else str(exc.value)
            payload = json.dumps({"error": [exc.parameter, value, exc.allowed]}).encode()
        if len(payload) > max_bytes:
            payload = json.dumps({"error": ["on_coordinator", len(payload), f"a result under {max_bytes} bytes"]}).encode()
    buf = np.zeros(max_bytes, np.uint8)
    buf[:len(payload)] = np.frombuffer(payload, np.uint8)
    buf = np.asarray(multihost_utils.broadcast_one_to_all(buf))
    result = json.loads(bytes(buf).rstrip(b"\0").decode())
    if "error" in result:
        raise ConfigError(*result["error"])
    return result["ok"]
