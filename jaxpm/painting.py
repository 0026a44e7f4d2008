"""Mass assignment: NGP, CIC and TSC painting (scatter) and read-out (gather) on a periodic mesh.

Positions are given in *mesh cell units* (0 <= x < N along each axis, any real value is wrapped
periodically); mesh node ``i`` sits at coordinate ``i``. Painting and reading with the same scheme are
adjoint operations, so forces read back at particles conserve momentum.

This is the pure-JAX reference implementation (scatter-add / gather); a faster kernel must match it.
"""

from __future__ import annotations

import itertools
from functools import partial

import jax
import jax.numpy as jnp

from .errors import ConfigError

__all__ = ["SCHEMES", "scheme_order", "paint", "readout"]

SCHEMES = {"ngp": 1, "cic": 2, "tsc": 3}


def scheme_order(scheme: str) -> int:
    """Order of a mass-assignment scheme (support in cells per axis): ngp 1, cic 2, tsc 3."""
    try:
        return SCHEMES[scheme]
    except KeyError:
        raise ConfigError("paint", scheme, " or ".join(SCHEMES)) from None


def _stencil_1d(x: jax.Array, order: int):
    """Node indices and weights along one axis: a list of ``order`` (index, weight) pairs."""
    if order == 1:
        i = jnp.floor(x + 0.5)
        return [(i, jnp.ones_like(x))]
    if order == 2:
        i = jnp.floor(x)
        f = x - i
        return [(i, 1.0 - f), (i + 1.0, f)]
    if order == 3:
        i = jnp.floor(x + 0.5)
        d = x - i  # in [-1/2, 1/2)
        return [(i - 1.0, 0.5 * (0.5 - d) ** 2), (i, 0.75 - d**2), (i + 1.0, 0.5 * (0.5 + d) ** 2)]
    raise ConfigError("paint order", order, "1 (NGP), 2 (CIC) or 3 (TSC)")


def _stencil(pos: jax.Array, shape, order: int, index_fn=None):
    """Yield (flat mesh index, weight) for every node of the 3D stencil of each position.

    ``index_fn(axis, node)`` maps integer global nodes to indices of ``shape`` (default: periodic
    wrap); the distributed painting (:mod:`jaxpm.halo`) maps them into a device's padded block.
    """
    per_axis = []
    for axis in range(3):
        n = shape[axis]
        to_index = (lambda node: jnp.mod(node, n)) if index_fn is None else partial(index_fn, axis)
        per_axis.append([(to_index(i.astype(jnp.int32)), w) for i, w in _stencil_1d(pos[..., axis], order)])
    for (ix, wx), (iy, wy), (iz, wz) in itertools.product(*per_axis):
        yield (ix * shape[1] + iy) * shape[2] + iz, wx * wy * wz


def paint(shape: tuple[int, int, int], pos: jax.Array, weight=None, scheme: str = "cic", mesh=None,
          index_fn=None) -> jax.Array:
    """Deposit particles onto a periodic mesh.

    Args:
        shape: mesh cells per side.
        pos: positions in mesh cell units, shape (..., 3).
        weight: scalar or array of shape ``pos.shape[:-1]`` (default 1 per particle).
        scheme: "ngp", "cic" or "tsc".
        mesh: optional mesh to add to (default zeros).
        index_fn: see :func:`_stencil` (internal: the distributed painting's block indexing).

    Returns:
        The mesh of shape ``shape``; its sum equals the sum of the weights exactly (up to rounding).
    """
    order = scheme_order(scheme)
    pos = pos.reshape(-1, 3)
    w = jnp.ones(pos.shape[0], pos.dtype) if weight is None else jnp.broadcast_to(jnp.asarray(weight, pos.dtype).reshape(-1), (pos.shape[0],))
    flat = jnp.zeros(shape[0] * shape[1] * shape[2], pos.dtype) if mesh is None else mesh.reshape(-1)
    for idx, ws in _stencil(pos, shape, order, index_fn):
        flat = flat.at[idx].add(w * ws, mode="promise_in_bounds")
    return flat.reshape(shape)


def readout(mesh: jax.Array, pos: jax.Array, scheme: str = "cic", index_fn=None) -> jax.Array:
    """Interpolate a periodic mesh (or a stack of meshes, shape (C, Nx, Ny, Nz)) at positions.

    Args:
        mesh: (Nx, Ny, Nz) or (C, Nx, Ny, Nz).
        pos: positions in mesh cell units, shape (..., 3).

    Returns:
        Values of shape ``pos.shape[:-1]`` (or ``pos.shape[:-1] + (C,)`` for a stack).
    """
    order = scheme_order(scheme)
    lead = pos.shape[:-1]
    stacked = mesh.ndim == 4
    shape = mesh.shape[-3:]
    flat = mesh.reshape((mesh.shape[0], -1) if stacked else (-1,))
    p = pos.reshape(-1, 3)
    out = 0.0
    for idx, ws in _stencil(p, shape, order, index_fn):
        if stacked:
            out = out + flat[:, idx].T * ws[:, None]
        else:
            out = out + flat[idx] * ws
    return out.reshape(lead + ((mesh.shape[0],) if stacked else ()))
