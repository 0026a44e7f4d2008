"""Distributed real-to-complex 3D FFT over a (px, py) device grid (pencil decomposition).

jaxdecomp 0.3.1 has only complex-to-complex transforms; a real field's c2c transform moves and
stores twice the bytes of its r2c transform. This module does the r2c transform with ``shard_map``
and two ``lax.all_to_all`` transposes:

    real (X, Y, Z)    P("x", "y")    block (X/px, Y/py, Z)
      rfft along z                   (X/px, Y/py, Zc)        Zc = Z/2+1 padded to a multiple of py
      all_to_all over "y"            (X/px, Y, Zc/py)
      fft along y
      all_to_all over "x"            (X, Y/px, Zc/py)
      fft along x
    complex (X, Y, Zc) P(None, "x", "y")

The output keeps the natural axis order (kx, ky, kz), so k-grids and Fourier kernels are the same
broadcastable arrays as on one device (:func:`jaxpm.fourier.kvectors`), and XLA slices them per
device. The padding planes kz > Z/2 are zero after the forward transform and dropped by the inverse.
Requirements (checked by :class:`~jaxpm.domain.Domain`): X % px == Y % px == Y % py == 0.

Autodiff: ``all_to_all`` transposes to the reverse ``all_to_all`` and the local FFTs to FFTs, so
gradients are exact; tests hold forward results and gradients to ``jnp.fft.rfftn`` on one device.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax import lax
from jax.sharding import PartitionSpec as P

__all__ = ["prfftn", "pirfftn"]

REAL, FOURIER = P("x", "y"), P(None, "x", "y")


def _forward_local(a, zc_pad: int, px: int, py: int):
    zc = a.shape[2] // 2 + 1
    a = jnp.fft.rfft(a, axis=2)
    if zc_pad > zc:
        a = jnp.pad(a, ((0, 0), (0, 0), (0, zc_pad - zc)))
    if py > 1:
        a = lax.all_to_all(a, "y", 2, 1, tiled=True)
    a = jnp.fft.fft(a, axis=1)
    if px > 1:
        a = lax.all_to_all(a, "x", 1, 0, tiled=True)
    return jnp.fft.fft(a, axis=0)


def _inverse_local(a, z: int, px: int, py: int):
    a = jnp.fft.ifft(a, axis=0)
    if px > 1:
        a = lax.all_to_all(a, "x", 0, 1, tiled=True)
    a = jnp.fft.ifft(a, axis=1)
    if py > 1:
        a = lax.all_to_all(a, "y", 1, 2, tiled=True)
    return jnp.fft.irfft(a[:, :, : z // 2 + 1], n=z, axis=2)


def prfftn(domain, x: jax.Array) -> jax.Array:
    """Forward r2c FFT (unnormalised) of a real (X, Y, Z) array split over ``domain``'s devices.

    Returns the complex (X, Y, Zc) array sharded P(None, "x", "y"), Zc = ``domain.fourier_shape``'s.
    """
    px, py = domain.pdims
    zc_pad = domain.fourier_shape(x.shape)[2]
    f = partial(_forward_local, zc_pad=zc_pad, px=px, py=py)
    return jax.shard_map(f, mesh=domain.device_mesh, in_specs=REAL, out_specs=FOURIER)(x)


def pirfftn(domain, xk: jax.Array, shape) -> jax.Array:
    """Inverse of :func:`prfftn` to a real array of ``shape`` (normalised by 1/N_cells)."""
    px, py = domain.pdims
    f = partial(_inverse_local, z=int(shape[2]), px=px, py=py)
    return jax.shard_map(f, mesh=domain.device_mesh, in_specs=FOURIER, out_specs=REAL)(xk)
