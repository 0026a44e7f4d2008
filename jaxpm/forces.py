"""Particle-mesh gravity: density on the force mesh and the force at the particles.

The raw PM force returned here is ``F = -grad lap^{-1} delta`` [Mpc/h] (density contrast delta on the
force mesh); the equations of motion (see :mod:`jaxpm.steppers`) are

    dx/da = p / (a^3 E(a)),     dp/da = 1.5 Omega_m F / (a^2 E(a)).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from . import fourier
from .domain import Domain
from .errors import ConfigError
from .painting import paint_nodes, paint_stack, readout_and_grad, readout_grad, readout_nodes, scheme_order

__all__ = ["ForceSpec", "density", "pm_forces", "force_from_density", "pm_forces_and_meshes", "pm_forces_vjp",
           "pm_forces_and_vjp", "paint_mesh", "read_mesh"]


@dataclasses.dataclass(frozen=True)
class ForceSpec:
    """Numerical choices of the PM force.

    Attributes:
        paint: mass assignment for painting and reading ("ngp", "cic", "tsc").
        gradient: "exact" (i k), "fd2" or "fd4" finite differences (see :mod:`jaxpm.fourier`).
        laplace: "exact" (-k^2) or "fd2".
        compensate: divide the density by the window of painting *and* reading (W(k)^2); None
            (default) means "only when B = 1".

    Why these defaults (measured, 64^3 particles in 512 Mpc/h, sigma8 = 0.01, 5 FastPM steps from
    a = 0.1; growth of P(k) over the linear prediction at k = 0.016 / 0.027 / 0.038 / 0.050 h/Mpc):

    ====  =======================  ===================================
    B     kernels                  P_final / P_linear-growth
    ====  =======================  ===================================
    1     exact, exact, no comp.   0.994 0.981 0.965 0.941
    1     exact, exact, comp.      0.999 0.997 0.995 0.990
    1     fd4, fd2, comp.          1.001 1.002 1.004 1.005  (default)
    2     exact, fd2, no comp.     1.076 1.122 1.180 1.218
    2     fd4, fd2, comp.          1.007 1.020 1.041 1.061
    2     fd4, fd2, no comp.       1.000 1.000 1.001 1.000  (default)
    ====  =======================  ===================================
    """

    paint: str = "cic"
    gradient: str = "fd4"
    laplace: str = "fd2"
    compensate: bool | None = None

    def __post_init__(self):
        scheme_order(self.paint)
        if self.gradient not in fourier.GRADIENTS:
            raise ConfigError("gradient", self.gradient, " or ".join(fourier.GRADIENTS))
        if self.laplace not in fourier.LAPLACIANS:
            raise ConfigError("laplace", self.laplace, " or ".join(fourier.LAPLACIANS))


def paint_mesh(domain: Domain, pos: jax.Array, weight=None, scheme: str = "cic", shape=None) -> jax.Array:
    """Paint particles at ``pos`` (force-mesh units, shape particles + (3,)) with ``weight`` (scalar or
    per particle) onto a mesh of ``shape`` (default ``domain.mesh_shape``), on one device or split
    over the domain's devices (:mod:`jaxpm.halo`).

    One device: :func:`jaxpm.painting.paint_nodes` (one stencil node's temporaries at a time;
    reverse-mode autodiff only)."""
    shape = domain.mesh_shape if shape is None else tuple(shape)
    if domain.distributed:
        from .halo import paint_sharded

        return paint_sharded(domain, shape, pos, weight, scheme)
    return paint_nodes(shape, pos, weight, scheme)


def read_mesh(domain: Domain, mesh: jax.Array, pos: jax.Array, scheme: str = "cic") -> jax.Array:
    """Values of a mesh (X, Y, Z) or stack (C, X, Y, Z) at ``pos`` (mesh units), shape particles (+ (C,))."""
    if domain.distributed:
        from .halo import readout_sharded

        return readout_sharded(domain, mesh, pos, scheme)
    return readout_nodes(mesh, pos, scheme)


def density(domain: Domain, dx: jax.Array, scheme: str = "cic") -> jax.Array:
    """Density in units of the mean, 1 + delta, on the force mesh (``domain.mesh_shape``).

    Each particle carries mass B^3, so the mesh mean is exactly 1.
    """
    return paint_mesh(domain, domain.to_mesh_units(dx), float(domain.B**3), scheme)


def _potential_k(domain: Domain, rho: jax.Array, spec: ForceSpec, kvec):
    """Fourier transform of the potential ``lap^{-1} delta`` (window-compensated as ``spec`` says)."""
    cell = domain.cell_size
    delta_k = fourier.rfftn(rho, domain)
    if (domain.B == 1) if spec.compensate is None else spec.compensate:
        delta_k = delta_k / fourier.mass_assignment_window(kvec, cell, scheme_order(spec.paint)) ** 2
    return delta_k * fourier.inverse_laplace(kvec, cell, spec.laplace)


def force_from_density(domain: Domain, rho: jax.Array, spec: ForceSpec = ForceSpec()) -> jax.Array:
    """Force meshes, shape (3,) + mesh_shape: ``F_i = -d_i lap^{-1} delta`` [Mpc/h]."""
    shape, cell = domain.mesh_shape, domain.cell_size
    kvec = fourier.kvectors(shape, domain.box, domain.real_dtype, domain)
    pot_k = _potential_k(domain, rho, spec, kvec)
    return domain.constrain(jnp.stack([fourier.irfftn(-fourier.gradient_kernel(kvec, cell, i, spec.gradient) * pot_k, shape, domain)
                                       for i in range(3)]), "stack")


def _difference(f: jax.Array, axis: int, h: float, kind: str) -> jax.Array:
    """The finite difference whose Fourier multiplier is ``fourier.gradient_kernel(.., kind)`` ("fd2" or
    "fd4"), applied in real space on the periodic mesh: (f(x+h) - f(x-h)) / 2h, or
    (8 (f(x+h) - f(x-h)) - (f(x+2h) - f(x-2h))) / 12h."""
    d1 = jnp.roll(f, -1, axis) - jnp.roll(f, 1, axis)
    if kind == "fd2":
        return d1 / (2.0 * h)
    return (8.0 * d1 - (jnp.roll(f, -2, axis) - jnp.roll(f, 2, axis))) / (12.0 * h)


def _solve_transpose_channels_last(domain: Domain, spec: ForceSpec, lam: jax.Array) -> jax.Array:
    """Transpose of the mesh solve density -> force meshes, for a cotangent stack ``lam`` of shape
    mesh_shape + (3,) (one device).

    The solve is ``F_i = -D_i A rho``, with ``A = lap^{-1}`` (window-compensated: a real, symmetric
    convolution) and ``D_i`` the gradient kernel. A finite-difference ``D_i`` is an antisymmetric
    real-space stencil, so the transpose is ``A sum_i D_i lam_i``: the three differences in real space
    (one pass over the painted layout) and two FFTs, where the transpose of the Fourier form takes four
    (3 rfft + 1 irfft) and a transpose of the stack. For the "exact" gradient (no stencil) it is
    :func:`_solve_transpose` of the Fourier form.
    """
    if spec.gradient == "exact":
        (g,) = _solve_transpose(domain, spec, lam.dtype)(jnp.moveaxis(lam, -1, 0))
        return g
    shape, cell = domain.mesh_shape, domain.cell_size
    div = sum(_difference(lam[..., i], i, float(cell[i]), spec.gradient) for i in range(3))
    kvec = fourier.kvectors(shape, domain.box, domain.real_dtype, domain)
    return fourier.irfftn(_potential_k(domain, div, spec, kvec), shape, domain)


def pm_forces(domain: Domain, dx: jax.Array, spec: ForceSpec = ForceSpec()) -> jax.Array:
    """PM force ``F = -grad lap^{-1} delta`` [Mpc/h] at each particle, same shape as ``dx``."""
    pos = domain.to_mesh_units(dx)
    rho = paint_mesh(domain, pos, float(domain.B**3), spec.paint)
    forces = force_from_density(domain, rho, spec)
    return read_mesh(domain, forces, pos, spec.paint).astype(dx.dtype)


def pm_forces_and_meshes(domain: Domain, dx: jax.Array, spec: ForceSpec = ForceSpec()):
    """:func:`pm_forces` and the force meshes it read from (shape (3,) + mesh_shape).

    The meshes are all :func:`pm_forces_vjp` needs to differentiate the force at ``dx`` later
    without evaluating it again (the reverse-time adjoint keeps one set of them).
    """
    pos = domain.to_mesh_units(dx)
    rho = paint_mesh(domain, pos, float(domain.B**3), spec.paint)
    forces = force_from_density(domain, rho, spec)
    return read_mesh(domain, forces, pos, spec.paint).astype(dx.dtype), forces


def pm_forces_vjp(domain: Domain, dx: jax.Array, forces: jax.Array, cotangent: jax.Array, spec: ForceSpec = ForceSpec()):
    """Cotangent of ``dx`` for the cotangent of ``pm_forces(domain, dx, spec)``, given its force meshes.

    Hand-written adjoint of :func:`pm_forces` (tests hold it to ``jax.vjp`` of the forward):
    the force at particle p is ``F_p = R(x_p) M P(x) `` with P painting, M the linear mesh solve and
    R the read-out. Its derivative has two terms: the read-out weights moving with x_p (the meshes
    held fixed), and the painted density moving with x, whose transpose is ``P'^T M^T R^T``; by the
    adjointness of painting and read-out, ``d/dx <P(x), G> = B^3 grad_x R(x) G``.
    """
    pos = domain.to_mesh_units(dx)
    ct = cotangent.astype(pos.dtype)
    transpose = _solve_transpose(domain, spec, pos.dtype)
    if not domain.distributed:
        # the node-looped kernels, ordered so that few particle-sized arrays are alive at once: the
        # three components of ct painted in one loop (node indices computed once), the mesh solve
        # transposed, then both position terms accumulated into one array
        lam = paint_stack(domain.mesh_shape, pos, ct, spec.paint)
        (g_mesh,) = transpose(lam)
        del lam
        g = readout_grad(forces, pos, spec.paint, ct)
        g = readout_grad(g_mesh, pos, spec.paint, float(domain.B**3), add_to=g)
        return (g / jnp.asarray(domain.cell_size, pos.dtype)).astype(dx.dtype)
    # term 1: read-out weights at fixed meshes
    g_read = jax.grad(lambda q: jnp.sum(read_mesh(domain, forces, q, spec.paint) * ct))(pos)
    # term 2: through the density: G = M^T R^T ct, then the painting weights
    lam = domain.constrain(jnp.stack([paint_mesh(domain, pos, ct[..., i], spec.paint) for i in range(3)]), "stack")
    (g_mesh,) = transpose(lam)
    g_paint = float(domain.B**3) * jax.grad(lambda q: jnp.sum(read_mesh(domain, g_mesh, q, spec.paint)))(pos)
    return ((g_read + g_paint) / jnp.asarray(domain.cell_size, pos.dtype)).astype(dx.dtype)


def _solve_transpose(domain: Domain, spec: ForceSpec, dtype):
    """Transpose of the linear mesh solve density -> force meshes (force stack -> one mesh)."""
    solve = lambda r: force_from_density(domain, r, spec)
    return jax.linear_transpose(solve, jax.ShapeDtypeStruct(domain.mesh_shape, dtype))


def pm_forces_and_vjp(domain: Domain, dx: jax.Array, cotangent: jax.Array, spec: ForceSpec = ForceSpec()):
    """``pm_forces(domain, dx, spec)`` and the cotangent of ``dx`` for its ``cotangent``, together.

    The reverse-time adjoint of KDK steppers needs both at every reconstructed position, with the
    cotangent already known (:mod:`jaxpm.steppers.adjoint`). On one device they share their passes
    over the particles: one scatter paints the density and the cotangent's three columns (4 meshes),
    and one gather reads the force meshes and the position gradient of both terms of
    :func:`pm_forces_vjp` (the force meshes' read-out weights, and the transposed solve of the painted
    cotangent). Distributed: :func:`pm_forces_and_meshes` then :func:`pm_forces_vjp`.
    """
    if domain.distributed:
        f, meshes = pm_forces_and_meshes(domain, dx, spec)
        return f, pm_forces_vjp(domain, dx, meshes, cotangent, spec)
    pos = domain.to_mesh_units(dx)
    ct = cotangent.astype(pos.dtype)
    b3 = float(domain.B**3)
    # density, then ct's 3 columns, in the scatter's own interleaved layout (X, Y, Z, 4)
    stack = paint_stack(domain.mesh_shape, pos, ct, spec.paint, lead_weight=b3, channels_last=True)
    forces = force_from_density(domain, stack[..., 0], spec)
    g_mesh = _solve_transpose_channels_last(domain, spec, stack[..., 1:])
    del stack
    f, g = readout_and_grad(forces, pos, spec.paint, ct, extra=g_mesh, extra_weight=b3)
    # both leave the gather together: without the barrier XLA fused the adjoint's use of f (undoing the
    # kick) into a second gather of the force meshes and wrote the per-axis stencil arrays out to feed
    # both (H100, 512^3: +12.5 ms and +4.2 ms a backward step)
    f, g = jax.lax.optimization_barrier((f, g))
    return f.astype(dx.dtype), (g / jnp.asarray(domain.cell_size, pos.dtype)).astype(dx.dtype)
