"""Shared by the tests that start ``python -m jaxpm`` or inspect saved fields."""

import os
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def subprocess_env() -> dict:
    """Environment for a child Python that imports this checkout's jaxpm on the CPU, in its default
    precision (the test process itself runs with x64 enabled)."""
    env = {k: v for k, v in os.environ.items() if k != "JAX_ENABLE_X64"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in [env.get("PYTHONPATH")] if p])
    env.setdefault("JAX_PLATFORMS", "cpu")
    return env


def multiprocess_env(devices: int, **extra) -> dict:
    """:func:`subprocess_env` with ``devices`` fake CPU devices per process and no launcher variables
    (SLURM_*, PMI_*, OMPI_*, JAXPM_*) leaking in from an outer job, plus ``extra`` variables."""
    env = {k: v for k, v in subprocess_env().items()
           if not k.startswith(("SLURM_", "PMI_", "PMIX_", "OMPI_", "MPI_LOCAL", "JAXPM_", "HYDRA_"))}
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    env["JAX_PLATFORMS"] = "cpu"
    env.update({k: str(v) for k, v in extra.items()})
    return env


def mode_power(field, box):
    """Per-mode |k| and P = V / N_c^2 |delta_k|^2 of a cubic field (full FFT)."""
    n = field.shape[0]
    F = np.fft.fftn(np.asarray(field, float))
    k1 = 2 * np.pi * np.fft.fftfreq(n, d=box / n)
    K = np.sqrt(k1[:, None, None] ** 2 + k1[None, :, None] ** 2 + k1[None, None, :] ** 2)
    return K, box**3 / n**6 * np.abs(F) ** 2
