"""Mass assignment: NGP, CIC and TSC painting (scatter) and read-out (gather) on a periodic mesh.

Positions are given in *mesh cell units* (0 <= x < N along each axis, any real value is wrapped
periodically); mesh node ``i`` sits at coordinate ``i``. Painting and reading with the same scheme are
adjoint operations, so forces read back at particles conserve momentum.

:func:`paint` and :func:`readout` are the pure-JAX reference (scatter-add / gather, one per stencil
node, all nodes' index and weight arrays built at once); the distributed painting (:mod:`jaxpm.halo`)
uses them. :func:`paint_nodes`, :func:`readout_nodes` and :func:`readout_grad` compute the same
things with less memory (the single-device engine uses them, tests hold them to the reference):

* painting loops over the stencil nodes with ``lax.fori_loop``, each node's indices and weights
  computed from the loop index, so only one node's particle-sized index/weight arrays exist at a time
  (a scatter needs its indices materialised; the reference holds 8 of each for CIC, 27 for TSC, and
  autodiff stores them all as residuals);
* read-outs (values and position gradients) are one unrolled sum over the nodes, which XLA fuses into
  a single pass with no index arrays; a node loop there measured 35 % slower forward runs on an H200
  (and 20x slower read-outs on a CPU) for 30 % less memory (benchmarks/README.md);
* they carry ``jax.custom_vjp`` rules, so reverse-mode autodiff stores only the positions (and the
  read mesh) and its backward pass is again one loop over the nodes: the transpose of painting is a
  read-out, the position derivative is a read-out with the derivative of the stencil weights
  (:func:`readout_grad`). Forward-mode autodiff (``jax.jvp``, ``jax.jacfwd``) through them is not
  supported (JAX refuses it for ``custom_vjp`` functions); use :func:`paint`/:func:`readout` for it.
"""

from __future__ import annotations

import itertools
import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from .errors import ConfigError

__all__ = ["SCHEMES", "scheme_order", "paint", "readout", "paint_nodes", "readout_nodes", "readout_grad", "paint_stack",
           "readout_and_grad"]

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


# ---------------------------------------------------------------------------------------------------
# Node-looped kernels (same results as paint/readout, one stencil node's temporaries at a time)

# Per order: base node floor(x + shift), offset of the first node from it, and for node k the weight
# as a polynomial in d = x - base: w_k(d) = a_k + d (b_k + c_k d) (the same weights as _stencil_1d).
_NODES = {
    1: (0.5, 0, ((1.0, 0.0, 0.0),)),
    2: (0.0, 0, ((1.0, -1.0, 0.0), (0.0, 1.0, 0.0))),
    3: (0.5, -1, ((0.125, -0.5, 0.5), (0.75, 0.0, -1.0), (0.125, 0.5, 0.5))),
}


def _node(pos, n, order: int, shape, derivative: bool = False):
    """Flat mesh index, per-axis weights and (if ``derivative``) per-axis weight derivatives d w / d x
    of stencil node ``n`` (a traced integer in [0, order^3)) for every position (rows of ``pos``)."""
    shift, first, coef = _NODES[order]
    # without the barrier XLA hoists the loop-invariant part (floor and fraction per axis, six
    # particle-sized arrays) out of the node loop and keeps it alive through the loop
    pos, n = jax.lax.optimization_barrier((pos, n))
    table = jnp.asarray(np.asarray(coef), pos.dtype)
    ks = (n // (order * order), (n // order) % order, n % order)
    idx, ws, dws = None, [], []
    for axis in range(3):
        x = pos[:, axis]
        base = jnp.floor(x + shift) if shift else jnp.floor(x)
        d = x - base
        a, b, c = table[ks[axis], 0], table[ks[axis], 1], table[ks[axis], 2]
        ws.append(a + d * (b + c * d))
        if derivative:
            dws.append(b + 2.0 * c * d)
        i = jnp.mod(base.astype(jnp.int32) + (ks[axis] + first), shape[axis])
        idx = i if idx is None else idx * shape[axis] + i
    return idx, ws, dws


def _scatter(shape, order: int, pos, w, lead=None, channels_last: bool = False):
    """Paint rows of ``pos`` (P, 3) with weights ``w``: a scalar or (P,) gives one mesh (M,),
    (P, C) gives a stack (C, M) (or (M, C) if ``channels_last``); with ``lead`` (a Python number, only
    with a stack) the stack gets a first mesh painted with that constant weight, 1 + C meshes. Plain
    JAX (reverse-differentiable by autodiff, storing per node).

    A stack is painted as one scatter of (P, C) rows into an interleaved (M, C) mesh per node (then
    transposed unless ``channels_last``): the C atomic adds of a particle hit adjacent addresses.
    Measured on an H200 (512^3 particles in Lagrangian order, C = 3, CIC;
    benchmarks/tools/paint_kernels.py): 30.0 ms against 48.5 ms for C separate (M,) meshes, and 6.0
    against 6.5 GiB. The weight columns (with the lead column) are one (P, 1 + C) array formed before
    the node loop, so that each node's stencil weight has a single use, the update, and XLA computes it
    inside the scatter: with the lead column concatenated per node (until 2026-12-05) XLA wrote each
    node's weights out first (H100, 512^3: 0.9 ms a node, 7 ms a backward step of the adjoint).
    """
    size = math.prod(shape)
    stacked = jnp.ndim(w) == 2
    if lead is not None:
        w = jnp.concatenate([jnp.full((w.shape[0], 1), lead, w.dtype), w], axis=1)

    def body(n, flat):
        idx, ws, _ = _node(pos, n, order, shape)
        wn = ws[0] * ws[1] * ws[2]
        return flat.at[idx].add(w * (wn[:, None] if stacked else wn), mode="promise_in_bounds")

    init = jnp.zeros((size, w.shape[1]) if stacked else size, pos.dtype)
    flat = jax.lax.fori_loop(0, order**3, body, init)
    return flat.T if stacked and not channels_last else flat


# How `_gather` reads a stack (C, M) when it computes values and the position gradient together:
# True reads each channel as its own (P,) column, False as (P, C) rows, None picks by backend (columns on
# GPUs, rows elsewhere). Read as rows, the values loop over (P, C) and the gradient over (P,), and XLA's GPU
# backend splits them into two gathers and writes the per-axis stencils (19 particle-sized arrays) out to
# feed both (H100, 512^3, jax 0.11.2: 39 ms a backward step of the adjoint, against 11.5 ms for the
# forward read-out of the same three meshes; benchmarks/tools/profile_adjoint.py). Read as columns, the
# second gather reads only the three columns, inside the stack of the values: 2LPT + 10 steps' gradient
# 1625.6 -> 1591.8 ms on one H100 (-3.4 ms a backward step), same memory; with the barrier below, one
# gather: 1475.1 ms, 21.9 GiB (benchmarks/README.md, 2026-12-07).
# XLA's CPU backend writes the C * order^3 per-node columns out instead (32^3 gradient: compiled memory
# 1.55x -> 2.07x the forward run's), hence rows there. Both forms give the same numbers
# (tests/test_painting.py holds them equal).
GATHER_COLUMNS: bool | None = None


def _gather_columns() -> bool:
    if GATHER_COLUMNS is not None:
        return bool(GATHER_COLUMNS)
    # the platform of jax.default_device if one is set (the memory tests compile for the CPU on a GPU
    # host that way), else the default backend; a computation placed elsewhere by hand gets the other
    # form, which gives the same numbers
    dev = jax.config.jax_default_device
    platform = jax.default_backend() if dev is None else getattr(dev, "platform", str(dev))
    return platform in ("gpu", "cuda", "rocm")


def _axis_nodes(x, order: int, n: int):
    """Per-axis stencil of positions ``x``: a list of ``order`` (index, weight, d weight / dx)."""
    shift, first, coef = _NODES[order]
    base = jnp.floor(x + shift) if shift else jnp.floor(x)
    d = x - base
    i0 = base.astype(jnp.int32) + first
    return [(jnp.mod(i0 + k, n), a + d * (b + c * d), b + 2.0 * c * d) for k, (a, b, c) in enumerate(coef)]


def _gather(flat, shape, order: int, pos, value: bool = True, grad_ct=None, grad_init=None, extra=None,
            extra_ct=None):
    """Read a flat mesh (M,) or stack (C, M) at rows of ``pos`` (P, 3).

    Returns ``(values, grad)``: values (P,) or (P, C) if ``value`` (else None), and if ``grad_ct`` is
    given (a scalar, (P,) or for a stack (P, C)) the gradient w.r.t. ``pos`` of
    ``sum(grad_ct * values)``, shape (P, 3), added to ``grad_init`` if given (else None). An ``extra``
    flat mesh (M,) adds the gradient of ``extra_ct * sum(read-out of extra)`` in the same pass (its
    values are not returned).

    Unlike painting, gathers need no loop: written as one sum over the unrolled nodes, XLA fuses the
    index arithmetic, the gathers and the sum into one pass over the particles, with no particle-sized
    temporaries (measured: the node loop was 20x slower on a CPU for the same memory).
    """
    stacked = flat.ndim == 2
    want_grad = grad_ct is not None
    columns = stacked and value and want_grad and _gather_columns()  # see GATHER_COLUMNS
    axes = [_axis_nodes(pos[:, a], order, shape[a]) for a in range(3)]
    val = [0.0] * flat.shape[0] if columns else 0.0
    gx = gy = gz = 0.0
    for (ix, wx, dx), (iy, wy, dy), (iz, wz, dz) in itertools.product(*axes):
        idx = (ix * shape[1] + iy) * shape[2] + iz
        w = wx * wy * wz
        if columns:
            ms = [flat[c, idx] for c in range(flat.shape[0])]
            val = [v + mc * w for v, mc in zip(val, ms)]
            sm = sum(mc * grad_ct[:, c] for c, mc in enumerate(ms))
        else:
            # a stack read as (M, C) rows (transposed once) measured the same on an H200 (512^3: 17.8 ms both)
            m = flat[:, idx].T if stacked else flat[idx]
            if value:
                val = val + m * (w[:, None] if stacked else w)
            if want_grad:
                sm = jnp.sum(m * grad_ct, axis=-1) if stacked else m * grad_ct
        if want_grad:
            if extra is not None:
                sm = sm + extra_ct * extra[idx]
            gx = gx + sm * dx * wy * wz
            gy = gy + sm * wx * dy * wz
            gz = gz + sm * wx * wy * dz
    if columns:
        # the values' columns and the gradient's leave the node sum together, so that XLA can compute
        # them in one multi-output loop: stacked first, the values' gather was fused into the stack and
        # the per-axis stencils written out to feed both. H100, 512^3, 2LPT + 10 steps' adjoint gradient:
        # 1592.3 -> 1475.1 ms and 27.9 -> 21.9 GiB (benchmarks/README.md, 2026-12-07 11:33)
        val, gx, gy, gz = jax.lax.optimization_barrier((val, gx, gy, gz))
        val = jnp.stack(val, axis=-1)
    grad = None
    if want_grad:
        grad = jnp.stack([gx, gy, gz], axis=-1)
        grad = grad if grad_init is None else grad_init + grad
    return (val if value else None), grad


@partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2))
def _paint_nodes(shape, order, scale, pos, w):
    return _scatter(shape, order, pos, scale if w is None else scale * w)


def _paint_nodes_fwd(shape, order, scale, pos, w):
    return _paint_nodes(shape, order, scale, pos, w), (pos, w)


def _paint_nodes_bwd(shape, order, scale, res, ct):
    # mesh = sum_p w_p sum_nodes W(x_p - node) e_node: d/dw_p is the read-out of ct at x_p, d/dx_p is
    # w_p times the read-out of ct with the derivative of the stencil weights
    pos, w = res
    ww = scale if w is None else scale * w
    val, grad = _gather(ct, shape, order, pos, value=w is not None, grad_ct=ww)
    if w is None:
        return grad, None
    return grad, (scale * val).reshape(w.shape) if jnp.ndim(w) else scale * jnp.sum(val)


_paint_nodes.defvjp(_paint_nodes_fwd, _paint_nodes_bwd)


@partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _readout_nodes(shape, order, flat, pos):
    return _gather(flat, shape, order, pos)[0]


def _readout_nodes_fwd(shape, order, flat, pos):
    return _readout_nodes(shape, order, flat, pos), (flat, pos)


def _readout_nodes_bwd(shape, order, res, ct):
    # transpose in the mesh: paint the cotangents; in the positions: read with the weight derivatives
    flat, pos = res
    return _scatter(shape, order, pos, ct), _gather(flat, shape, order, pos, value=False, grad_ct=ct)[1]


_readout_nodes.defvjp(_readout_nodes_fwd, _readout_nodes_bwd)


def paint_nodes(shape: tuple[int, int, int], pos: jax.Array, weight=None, scheme: str = "cic", mesh=None) -> jax.Array:
    """:func:`paint` (same arguments and result, no ``index_fn``) with one node's temporaries at a time.

    A Python number ``weight`` is a constant (no cotangent is computed for it); an array weight is
    differentiated. Reverse-mode differentiable (custom VJP); forward mode is not supported.
    """
    order = scheme_order(scheme)
    shape = tuple(int(s) for s in shape)
    p = pos.reshape(-1, 3)
    if weight is None or isinstance(weight, (int, float)):
        scale, w = 1.0 if weight is None else float(weight), None
    else:
        w = jnp.asarray(weight, p.dtype)
        w = w if w.ndim == 0 else w.reshape(-1)
        scale = 1.0
    out = _paint_nodes(shape, order, scale, p, w).reshape(shape)
    return out if mesh is None else mesh + out


def readout_nodes(mesh: jax.Array, pos: jax.Array, scheme: str = "cic") -> jax.Array:
    """:func:`readout` (same arguments and result, no ``index_fn``), with a custom VJP: autodiff keeps only
    the mesh and the positions, and the backward pass is a node-looped paint (mesh cotangent) and a
    fused position gradient. Reverse mode only; forward mode is not supported.
    """
    order = scheme_order(scheme)
    stacked = mesh.ndim == 4
    shape = tuple(int(s) for s in mesh.shape[-3:])
    flat = mesh.reshape((mesh.shape[0], -1) if stacked else (-1,))
    out = _readout_nodes(shape, order, flat, pos.reshape(-1, 3).astype(mesh.dtype))
    return out.reshape(pos.shape[:-1] + ((mesh.shape[0],) if stacked else ()))


def readout_grad(mesh: jax.Array, pos: jax.Array, scheme: str = "cic", cotangent=None, add_to=None) -> jax.Array:
    """Gradient w.r.t. ``pos`` of ``sum(cotangent * readout(mesh, pos, scheme))``, shape ``pos.shape``
    (plus ``add_to``, of that shape, if given: accumulated in place, no second array).

    ``cotangent`` has the shape of the read-out or is a scalar (default 1: for one mesh, the gradient
    of each particle's interpolated value). Computed directly, d/dx sum_nodes w(x - node) mesh[node], in one
    loop over the nodes: no autodiff of the read-out and none of its residuals.
    """
    order = scheme_order(scheme)
    stacked = mesh.ndim == 4
    shape = tuple(int(s) for s in mesh.shape[-3:])
    flat = mesh.reshape((mesh.shape[0], -1) if stacked else (-1,))
    p = pos.reshape(-1, 3).astype(mesh.dtype)
    ct = jnp.asarray(1.0 if cotangent is None else cotangent, mesh.dtype)
    if ct.ndim:  # a scalar multiplies every read value; otherwise one per read value
        ct = ct.reshape((p.shape[0], mesh.shape[0]) if stacked else (p.shape[0],))
    init = None if add_to is None else add_to.reshape(p.shape).astype(mesh.dtype)
    return _gather(flat, shape, order, p, value=False, grad_ct=ct, grad_init=init)[1].reshape(pos.shape)


def paint_stack(shape: tuple[int, int, int], pos: jax.Array, weights: jax.Array, scheme: str = "cic",
                lead_weight: float | None = None, channels_last: bool = False) -> jax.Array:
    """Paint the C weight columns of ``weights`` (particles + (C,)) at ``pos`` as C meshes, shape
    (C,) + ``shape``, in one loop over the stencil nodes (each node's indices computed once for all
    C). Same as stacking C :func:`paint_nodes`; plain JAX (autodiff stores per node, for second order).

    ``lead_weight`` (a number): also paint every particle with that constant weight as a first mesh,
    shape (1 + C,) + ``shape`` (a density and C weight columns in one scatter). ``channels_last``:
    return the painted layout itself, ``shape`` + (C,), with no transpose."""
    order = scheme_order(scheme)
    shape = tuple(int(s) for s in shape)
    w = weights.reshape(-1, weights.shape[-1])
    lead = None if lead_weight is None else float(lead_weight)
    out = _scatter(shape, order, pos.reshape(-1, 3).astype(w.dtype), w, lead, channels_last)
    return out.reshape(shape + (out.shape[1],)) if channels_last else out.reshape((out.shape[0],) + shape)


def readout_and_grad(stack: jax.Array, pos: jax.Array, scheme: str, cotangent: jax.Array, extra: jax.Array | None = None,
                     extra_weight: float = 1.0):
    """Values of a stack (C, X, Y, Z) at ``pos`` (mesh units), shape particles + (C,), and in the same
    pass over the particles the gradient w.r.t. ``pos`` of ``sum(cotangent * values)`` (cotangent of
    the values' shape) plus, for an ``extra`` mesh (X, Y, Z), of ``extra_weight`` times the sum of its
    read-out at ``pos``. Shape ``pos.shape``. (The PM force and its VJP read this way:
    :func:`jaxpm.forces.pm_forces_and_vjp`.)"""
    order = scheme_order(scheme)
    shape = tuple(int(s) for s in stack.shape[-3:])
    flat = stack.reshape(stack.shape[0], -1)
    p = pos.reshape(-1, 3).astype(stack.dtype)
    ct = jnp.asarray(cotangent, stack.dtype).reshape(p.shape[0], stack.shape[0])
    ex = None if extra is None else extra.reshape(-1)
    val, grad = _gather(flat, shape, order, p, grad_ct=ct, extra=ex, extra_ct=jnp.asarray(extra_weight, stack.dtype))
    return val.reshape(pos.shape[:-1] + (stack.shape[0],)), grad.reshape(pos.shape)
