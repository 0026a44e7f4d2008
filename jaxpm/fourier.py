"""Real FFTs, wavevector grids and Fourier kernels.

FFT convention (numpy's): forward ``delta_k = sum_x delta_x exp(-i k.x)`` unnormalised, inverse with
1/N_cells. With this convention the power spectrum of a field on a mesh of N_c cells in volume V is
``P(k) = V / N_c^2 <|delta_k|^2>`` [(Mpc/h)^3].

All functions take the mesh shape and box explicitly, or a :class:`~jaxpm.domain.Domain`; the FFT
entry points (:func:`rfftn`, :func:`irfftn`) are the only place where the transform is chosen, so the
distributed engine replaces them without touching callers.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from .errors import ConfigError

__all__ = [
    "rfftn",
    "irfftn",
    "kvectors",
    "kmodulus",
    "mode_mask",
    "gradient_kernel",
    "laplace_kernel",
    "inverse_laplace",
    "mass_assignment_window",
    "GRADIENTS",
    "LAPLACIANS",
]

GRADIENTS = ("exact", "fd2", "fd4")
LAPLACIANS = ("exact", "fd2")


def rfftn(x: jax.Array, domain=None) -> jax.Array:
    """Forward real FFT of a 3D mesh (unnormalised).

    On a distributed ``domain`` this is the pencil r2c transform of :mod:`jaxpm.pfft`, whose last
    axis is padded to ``domain.fourier_shape(x.shape)[2]`` with zero planes.
    """
    if domain is not None and domain.distributed:
        from .pfft import prfftn

        return prfftn(domain, x)
    return jnp.fft.rfftn(x)


def irfftn(xk: jax.Array, shape: tuple[int, int, int], domain=None) -> jax.Array:
    """Inverse of :func:`rfftn` for a real mesh of ``shape`` (normalised by 1/N_cells)."""
    if domain is not None and domain.distributed:
        from .pfft import pirfftn

        return pirfftn(domain, xk, shape)
    return jnp.fft.irfftn(xk, s=shape)


def kvectors(shape, box, dtype=jnp.float32, domain=None) -> list[jax.Array]:
    """Angular wavenumbers [h/Mpc] of an rfft of a mesh of ``shape`` cells in ``box`` [Mpc/h].

    Returns three arrays shaped to broadcast: (Nx,1,1), (1,Ny,1), (1,1,Nz//2+1). On a distributed
    ``domain`` the last one is padded to the pencil FFT's length with kz = 0 (padding modes hold
    zeros; :func:`mode_mask` tells them apart).
    """
    ks = []
    for axis, (n, L) in enumerate(zip(shape, box)):
        d = L / n
        k = (jnp.fft.rfftfreq if axis == 2 else jnp.fft.fftfreq)(n, d) * (2 * math.pi)
        if axis == 2 and domain is not None:
            k = jnp.pad(k, (0, domain.fourier_shape(shape)[2] - k.shape[0]))
        s = [1, 1, 1]
        s[axis] = k.shape[0]
        ks.append(k.astype(dtype).reshape(s))
    return ks


def mode_mask(shape, domain=None) -> jax.Array:
    """1 for the real modes of an rfft of ``shape`` on ``domain``, 0 for padding planes; (1, 1, Zc)."""
    zc = shape[2] // 2 + 1
    zp = zc if domain is None else domain.fourier_shape(shape)[2]
    return (jnp.arange(zp) < zc).astype(jnp.float32).reshape(1, 1, zp)


def kmodulus(kvec) -> jax.Array:
    return jnp.sqrt(sum(k**2 for k in kvec))


def gradient_kernel(kvec, box_cell, axis: int, kind: str = "exact") -> jax.Array:
    """Fourier multiplier of d/dx_axis.

    kind: "exact" ``i k`` (zero on the Nyquist plane, where i k has no real counterpart); "fd2" the 2-point central difference ``i sin(k h)/h``; "fd4" the 4-point
    difference ``i (8 sin(k h) - sin(2 k h)) / (6 h)`` (FastPM's default), with h the cell size [Mpc/h].
    """
    k = kvec[axis]
    h = box_cell[axis]
    if kind == "exact":
        g = jnp.where(jnp.abs(k * h) < math.pi * (1 - 1e-6), k, 0.0)
    elif kind == "fd2":
        g = jnp.sin(k * h) / h
    elif kind == "fd4":
        g = (8.0 * jnp.sin(k * h) - jnp.sin(2.0 * k * h)) / (6.0 * h)
    else:
        raise ConfigError("gradient", kind, " or ".join(GRADIENTS))
    return 1j * g


def laplace_kernel(kvec, box_cell, kind: str = "exact") -> jax.Array:
    """Fourier multiplier of the Laplacian: "exact" ``-k^2``; "fd2" ``-sum (2 sin(k h/2)/h)^2``."""
    if kind == "exact":
        return -sum(k**2 for k in kvec)
    if kind == "fd2":
        return -sum((2.0 * jnp.sin(k * h / 2.0) / h) ** 2 for k, h in zip(kvec, box_cell))
    raise ConfigError("laplace", kind, " or ".join(LAPLACIANS))


def inverse_laplace(kvec, box_cell, kind: str = "exact") -> jax.Array:
    """1 / laplace_kernel with the k = 0 mode set to 0 (the mean carries no force)."""
    lap = laplace_kernel(kvec, box_cell, kind)
    zero = lap == 0
    return jnp.where(zero, 0.0, 1.0 / jnp.where(zero, 1.0, lap))


def mass_assignment_window(kvec, box_cell, order: int) -> jax.Array:
    """Fourier window of a mass-assignment scheme of ``order`` (1 NGP, 2 CIC, 3 TSC).

    ``W(k) = prod_i sinc(k_i h_i / 2)^order`` with sinc(x) = sin(x)/x; divide by it to compensate.
    """
    w = 1.0
    for k, h in zip(kvec, box_cell):
        x = k * h / 2.0
        w = w * jnp.sinc(x / math.pi) ** order
    return w
