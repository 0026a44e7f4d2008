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


def mode_power(field, box):
    """Per-mode |k| and P = V / N_c^2 |delta_k|^2 of a cubic field (full FFT)."""
    n = field.shape[0]
    F = np.fft.fftn(np.asarray(field, float))
    k1 = 2 * np.pi * np.fft.fftfreq(n, d=box / n)
    K = np.sqrt(k1[:, None, None] ** 2 + k1[None, :, None] ** 2 + k1[None, None, :] ** 2)
    return K, box**3 / n**6 * np.abs(F) ** 2
