"""Painting and reading on a distributed Domain: halo exchange and particle migration.

Layout (see :class:`~jaxpm.domain.Domain`): the force mesh (X, Y, Z) is split into px x py pencils,
device (i, j) owning mesh cells [i bx, (i+1) bx) x [j by, (j+1) by) x [0, Z); particles are stored by
Lagrangian block (device (i, j) holds the particles whose *lattice* sites fall in its block), wherever
they have moved.

Painting on device (i, j) (inside one ``shard_map``):

1. Each stencil node is mapped to the device's *padded block*, the window [-h, b + h) around its
   cells on every split axis (h = ``domain.halo``). A particle whose whole stencil lies in the
   window is painted there ("near").
2. Particles outside the window ("far") are migrated: compacted into a buffer of
   ``ceil(capacity x local particles)`` entries, routed to the owner of their stencil's base node by
   ``lax.all_to_all`` over "x", then over "y", and painted there (the base node lies in the owner's
   block, so the stencil fits a halo of 1).
3. The halos are added to the neighbours' blocks (``lax.ppermute`` along x, then y; corners travel
   with the second pass) and cropped.

Reading is the transpose: the neighbours' edge cells are copied into the halos (``ppermute``), near
particles read locally, far particles' positions travel to their owners, are read there and the
values travel back by the reverse ``all_to_all``. Every piece is a JAX primitive whose autodiff is
its exact adjoint (``ppermute``/``all_to_all`` transpose to the reverse permutation, gathers to
scatter-adds), so gradients need no custom rules: tests hold paint, read and their gradients to the
single-device reference (:mod:`jaxpm.painting`) on every decomposition.

Overflow: if a buffer is too small, the dropped particles' weights are lost; the painted mesh (or
read values) is then set to NaN on every device, never silently wrong, and
:func:`check_migration` raises an error naming the remedy (a larger ``capacity`` or ``halo``).
"""

from __future__ import annotations

import math
import warnings

import jax
import jax.numpy as jnp
from jax import lax
from jax.sharding import PartitionSpec as P

from .errors import MigrationOverflow
from .painting import _stencil_1d, paint, readout, scheme_order

__all__ = ["paint_sharded", "readout_sharded", "check_migration", "MigrationOverflow"]

#: overflow counts reported by the devices since the last :func:`check_migration` (host side)
_OVERFLOWS: list[tuple[int, int]] = []


class _Axis:
    """One split mesh axis as seen from inside ``shard_map``."""

    def __init__(self, array_axis: int, name: str, ndev: int, size: int, halo: int):
        self.array_axis, self.name, self.ndev, self.size = array_axis, name, ndev, size
        self.block = size // ndev
        self.halo = halo
        self.shift = (size - self.block) // 2  # relative node r wraps into [-shift, size - shift)

    def rel(self, node):
        """Node index relative to this device's block start (int32), minimum image."""
        lo = lax.axis_index(self.name) * self.block
        return jnp.mod(node - lo + self.shift, self.size) - self.shift

    def owner(self, node):
        return jnp.mod(node, self.size) // self.block


def _axes(domain, mesh_shape):
    axes = []
    for a, (name, p) in enumerate(zip(("x", "y"), domain.pdims)):
        if p > 1:
            axes.append(_Axis(a, name, p, mesh_shape[a], domain.halo))
    return axes


def _reach(order: int):
    """Offsets of the first and last stencil node from the base node (:func:`_stencil_1d`'s first)."""
    return {1: (0, 0), 2: (0, 1), 3: (-1, 1)}[order]


def _index_fn(axes, mesh_shape):
    """Map global integer nodes to the padded local block (clipped: out-of-window nodes carry no weight)."""
    by_axis = {ax.array_axis: ax for ax in axes}

    def index(axis, node):
        ax = by_axis.get(axis)
        if ax is None:
            return jnp.mod(node, mesh_shape[axis])
        return jnp.clip(ax.rel(node) + ax.halo, 0, ax.block + 2 * ax.halo - 1)

    return index


def _padded_shape(axes, mesh_shape):
    shape = list(mesh_shape)
    for ax in axes:
        shape[ax.array_axis] = ax.block + 2 * ax.halo
    return tuple(shape)


def _near_and_owner(pos, axes, order):
    """Per particle: inside the padded window on every split axis; owner coordinate per split axis."""
    lo_off, hi_off = _reach(order)
    near = jnp.ones(pos.shape[:-1], bool)
    owners = []
    for ax in axes:
        base = _stencil_1d(pos[..., ax.array_axis], order)[-lo_off][0].astype(jnp.int32)
        r = ax.rel(base)
        near = near & (r + lo_off >= -ax.halo) & (r + hi_off < ax.block + ax.halo)
        owners.append(ax.owner(base))
    return near, owners


# -- halo exchange ------------------------------------------------------------------------------------
def _shifted(x, ax, direction):
    """What the neighbour at offset -direction along ``ax`` sends (cyclic)."""
    n = ax.ndev
    return lax.ppermute(x, ax.name, [(i, (i + direction) % n) for i in range(n)])


def _accumulate(mesh, ax, offset):
    """Add the halos of a padded axis to the neighbours' edge cells and crop the axis."""
    a, h, b = ax.array_axis + offset, ax.halo, ax.block
    take = lambda start, stop: lax.slice_in_dim(mesh, start, stop, axis=a)
    from_prev = _shifted(take(b + h, b + 2 * h), ax, +1)  # previous device's upper halo = my first h cells
    from_next = _shifted(take(0, h), ax, -1)  # next device's lower halo = my last h cells
    inner = take(h, b + h)
    idx = [slice(None)] * inner.ndim
    idx[a] = slice(0, h)
    inner = inner.at[tuple(idx)].add(from_prev)
    idx[a] = slice(b - h, b)
    return inner.at[tuple(idx)].add(from_next)


def _fill(mesh, ax, offset):
    """Pad an axis with copies of the neighbours' edge cells (the transpose of :func:`_accumulate`)."""
    a, h, b = ax.array_axis + offset, ax.halo, ax.block
    lower = _shifted(lax.slice_in_dim(mesh, b - h, b, axis=a), ax, +1)
    upper = _shifted(lax.slice_in_dim(mesh, 0, h, axis=a), ax, -1)
    return jnp.concatenate([lower, mesh, upper], axis=a)


# -- migration --------------------------------------------------------------------------------------
def _slots(dest, valid, ndest: int, cap: int):
    """Slot of each entry in a (ndest x cap) send buffer, ndest * cap for dropped entries; and the
    number of valid entries dropped for lack of room."""
    onehot = (dest[:, None] == jnp.arange(ndest, dtype=dest.dtype)[None, :]) & valid[:, None]
    rank = jnp.take_along_axis(jnp.cumsum(onehot, axis=0, dtype=jnp.int32), dest[:, None], axis=1)[:, 0] - 1
    ok = valid & (rank < cap)
    return jnp.where(ok, dest * cap + rank, ndest * cap), jnp.sum(valid & ~ok)


class _Route:
    """Far particles' journey to their owners: compaction, then one ``all_to_all`` per split axis.

    ``forward(payload)`` delivers per-particle rows (n, k) to the owners as (m, k) rows (with a
    validity column); ``back(values)`` returns per-row values from the owners to the particles.
    """

    def __init__(self, far, owners, axes, cap):
        self.axes, self.cap, self.owners = axes, cap, owners
        # compaction by prefix sum: the j-th far particle is row src[j]; gathering cap rows (not
        # scattering all n) keeps the cost proportional to the buffer
        csum = jnp.cumsum(far, dtype=jnp.int32)
        count = csum[-1]
        self.src = jnp.searchsorted(csum, jnp.arange(1, cap + 1, dtype=jnp.int32), side="left")
        self.slot = jnp.where(far, csum - 1, cap)  # row of each particle in the buffer (cap: none)
        self.dropped = jnp.maximum(count - cap, 0)
        self.plans = []

    def forward(self, rows):
        """rows: (n, k) float; returns (m, k + 1) with the validity in the last column."""
        n = rows.shape[0]
        dtype = rows.dtype
        cols = [rows, jnp.ones((n, 1), dtype)] + [o.astype(dtype)[:, None] for o in self.owners]
        k = rows.shape[1]
        buf = jnp.concatenate([c.at[self.src].get(mode="fill", fill_value=0) for c in cols], axis=1)
        for i, ax in enumerate(self.axes):
            valid = buf[:, k] > 0.5
            dest = buf[:, k + 1 + i].astype(jnp.int32)
            s, dropped = _slots(dest, valid, ax.ndev, self.cap)
            self.dropped = self.dropped + dropped
            send = jnp.zeros((ax.ndev * self.cap, buf.shape[1]), dtype).at[s].set(buf, mode="drop")
            recv = lax.all_to_all(send.reshape(ax.ndev, self.cap, -1), ax.name, 0, 0, tiled=False)
            self.plans.append(s)
            buf = recv.reshape(ax.ndev * self.cap, -1)
        return buf[:, : k + 1]

    def back(self, values):
        """values: (m, v) at the owners -> (n, v) per original particle (zeros where not far/dropped)."""
        for ax, s in zip(reversed(self.axes), reversed(self.plans)):
            ret = lax.all_to_all(values.reshape(ax.ndev, self.cap, -1), ax.name, 0, 0, tiled=False)
            values = ret.reshape(ax.ndev * self.cap, -1).at[s].get(mode="fill", fill_value=0)
        return values.at[jnp.minimum(self.slot, self.cap)].get(mode="fill", fill_value=0)


def _spread(got_pos, valid, own_pos):
    """Positions of received rows, with the empty rows (zero weight) put on this device's own particles:
    many rows at one node would serialise the GPU's atomic scatter-adds (measured: 7x slower paint)."""
    m, n = got_pos.shape[0], own_pos.shape[0]
    filler = own_pos[jnp.arange(m) % n]
    return jnp.where(valid[:, None] > 0.5, got_pos, filler)


def _capacity(domain, n_local: int) -> int:
    return max(8, int(math.ceil(domain.capacity * n_local)))


def _report(count, capacity):
    if int(count) > 0:
        _OVERFLOWS.append((int(count), int(capacity)))
        warnings.warn(f"particle migration overflow: {int(count)} particles did not fit the buffers of "
                      f"{int(capacity)} entries; the result is NaN (see jaxpm.halo.check_migration)", RuntimeWarning,
                      stacklevel=1)


def _poison(x, dropped, axes, cap):
    total = lax.psum(dropped, tuple(ax.name for ax in axes))
    # the host hears of it only when it happens: an unconditional callback costs a device-host round
    # trip on every paint and read (about 1 ms, measured)
    lax.cond(total > 0, lambda t: jax.debug.callback(_report, t, cap), lambda t: None, total)
    return jnp.where(total > 0, jnp.nan, x).astype(x.dtype)


def check_migration() -> None:
    """Raise :class:`MigrationOverflow` if any distributed paint or read since the last call dropped
    particles (call it after a run has finished; it clears the record)."""
    if _OVERFLOWS:
        worst = max(c for c, _ in _OVERFLOWS)
        cap = _OVERFLOWS[0][1]
        _OVERFLOWS.clear()
        raise MigrationOverflow(
            f"particle migration buffers overflowed (up to {worst} particles did not fit {cap} entries): the "
            "results are NaN. Particles moved farther than the halo in large numbers; raise the Domain's "
            "`capacity` (fraction of a device's particles, e.g. --capacity 0.2) or its `halo` (cells).")


# -- public entry points -------------------------------------------------------------------------------
def _specs(extra: int):
    """PartitionSpec of an array split over x and y with ``extra`` whole trailing axes."""
    return P("x", "y", *([None] * extra))


def paint_sharded(domain, mesh_shape, pos: jax.Array, weight=None, scheme: str = "cic") -> jax.Array:
    """Paint particles (positions in global mesh units, shape particles + (3,), split like the lattice)
    onto a mesh of ``mesh_shape`` split P("x", "y") over ``domain``'s devices. Same result as
    :func:`jaxpm.painting.paint` of the whole arrays."""
    order = scheme_order(scheme)
    w = jnp.broadcast_to(jnp.asarray(1.0 if weight is None else weight, pos.dtype), pos.shape[:-1])
    axes = _axes(domain, mesh_shape)
    padded = _padded_shape(axes, mesh_shape)
    index_fn = _index_fn(axes, mesh_shape)
    n_local = math.prod(pos.shape[:-1]) // math.prod(domain.pdims)
    cap = _capacity(domain, n_local)

    def local(pos, w):
        pos, w = pos.reshape(-1, 3), w.reshape(-1)
        near, owners = _near_and_owner(pos, axes, order)
        route = _Route(~near, owners, axes, cap)
        got = route.forward(jnp.concatenate([pos, w[:, None]], axis=1))
        # one scatter pass for the near particles and the received ones
        mesh = paint(padded, jnp.concatenate([pos, _spread(got[:, :3], got[:, 4], pos)]),
                     jnp.concatenate([jnp.where(near, w, 0), got[:, 3] * got[:, 4]]), scheme, index_fn=index_fn)
        for ax in axes:
            mesh = _accumulate(mesh, ax, 0)
        return _poison(mesh, route.dropped, axes, cap)

    f = jax.shard_map(local, mesh=domain.device_mesh, in_specs=(_specs(2), _specs(1)),
                      out_specs=P("x", "y"))
    return f(pos, w)


def readout_sharded(domain, mesh: jax.Array, pos: jax.Array, scheme: str = "cic") -> jax.Array:
    """Read a mesh (X, Y, Z) or a stack (C, X, Y, Z) split over ``domain``'s devices at particles
    (global mesh units, split like the lattice). Same result as :func:`jaxpm.painting.readout`."""
    order = scheme_order(scheme)
    stacked = mesh.ndim == 4
    mesh_shape = mesh.shape[-3:]
    axes = _axes(domain, mesh_shape)
    index_fn = _index_fn(axes, mesh_shape)
    n_local = math.prod(pos.shape[:-1]) // math.prod(domain.pdims)
    cap = _capacity(domain, n_local)
    off = 1 if stacked else 0
    lead = pos.shape[:-1]

    def local(m, pos):
        shp = pos.shape[:-1]
        pos = pos.reshape(-1, 3)
        for ax in reversed(axes):
            m = _fill(m, ax, off)
        near, owners = _near_and_owner(pos, axes, order)
        route = _Route(~near, owners, axes, cap)
        got = route.forward(pos)
        n = pos.shape[0]
        both = readout(m, jnp.concatenate([pos, _spread(got[:, :3], got[:, 3], pos)]), scheme, index_fn=index_fn)
        both = both if stacked else both[:, None]
        val, far_val = both[:n], both[n:] * got[:, 3:4]  # one gather pass for own and requested positions
        far_val = route.back(far_val)
        out = jnp.where(near[:, None], val, far_val)
        out = _poison(out, route.dropped, axes, cap)
        out = out if stacked else out[:, 0]
        return out.reshape(shp + out.shape[1:])

    mesh_spec = P(None, "x", "y") if stacked else P("x", "y")
    out_spec = P("x", "y", *([None] * (len(lead) - 2 + (1 if stacked else 0))))
    f = jax.shard_map(local, mesh=domain.device_mesh, in_specs=(mesh_spec, _specs(len(lead) - 1)),
                      out_specs=out_spec)
    return f(mesh, pos)
