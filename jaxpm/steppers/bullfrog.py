"""BullFrog: drift-kick-drift in growth time whose every step is exact to second order in LPT.

Rampf, List & Hahn 2024 (arXiv:2409.19049, JCAP 2025/02/020). Written from the paper's idea and
re-derived here; the notation below is ours.

**Time and velocity variables.** The time is the linear growth factor D = D1(a) (D1(1) = 1) and the
velocity is u = dx/dD [Mpc/h]. In our momentum convention (p = a^2 dx/dt / H0, see :mod:`jaxpm.lpt`)

    u = p / G_p(a),     G_p = a^3 E dD1/da = a^2 E dD1/dln a      (``GrowthTable.gp``),

and the equations of motion dx/da = p / (a^3 E), dp/da = 1.5 Omega_m F / (a^2 E) become

    dx/dD = u,          du/dD = c(D) (F / D - u),     c = G_f / (G_p dD1/da),  G_f = dG_p/da,

with F = -grad lap^{-1} delta the raw PM force [Mpc/h] (c = 3 / (2 D) in Einstein-de Sitter). On the
Zel'dovich (1LPT) trajectory x = q + D Psi1 the force is F = D Psi1 and u = Psi1 is constant.

**One step** D_i -> D_f (Delta = D_f - D_i, midpoint D_h = (D_i + D_f) / 2), one force evaluation:

    drift   x_h = x_i + (Delta / 2) u_i
    kick    u_f = alpha u_i + beta F(x_h),          beta = (1 - alpha) / D_h
    drift   x_f = x_h + (Delta / 2) u_f

``beta`` keeps 1LPT exact for any ``alpha`` (u_i = Psi1, F(x_h) = D_h Psi1 give u_f = Psi1), so linear
growth is exact at every step size, as in FastPM. ``alpha`` is then chosen so that the step is exact
for 2LPT, x = q + D1 Psi1 + D2 Psi2 (D2 = -3/7 D1^2 in EdS): a displacement A Psi1 + B Psi2 feels the
force A Psi1 + (B - A^2) Psi2 to second order (on the 2LPT trajectory this is the source of the D2
equation), so the Psi2 part of the kick is exact when, with g = dD2/dD1,

    alpha = (g(D_f) - b) / (g(D_i) - b),      b = [D2(D_i) + g(D_i) Delta / 2] / D_h - D_h.

The velocity u_f is then the 2LPT velocity at D_f in any cosmology; the position adds the trapezoidal
rule for D2, exact when D2 is quadratic in D1 (EdS); in Planck-2018 LCDM it misses the D2 term by
1.1 % for one step a = 0.1 -> 1 and by 0.2 % for a = 0.5 -> 1 (the error falls as Delta^3 per step).
Beyond second order the step is not exact, but converges as the steps shrink.

**Starting from a = 0.** At D = 0 the growing mode has x = q and u = Psi1 (finite), so the first step
can start at a = 0 from the 1LPT displacement field alone (:func:`bullfrog_from_rest`); it then lands
on 2LPT at D_1 without computing Psi2. The momentum p = G_p u vanishes at a = 0, so this start cannot
go through :class:`PMState` (it is done in velocity variables and the state is made at the end of
the first step).

**State.** Between steps the :class:`PMState` holds our momentum p (converted from u with G_p at the
step boundaries), so snapshots compare directly with FastPM's. BullFrog never needs the force at the
step boundaries: ``init`` does not evaluate it (it stores zeros) and after a step ``state.force`` is
the force used by that step's kick, at the mid-step positions x_h. A run of n steps costs n forces.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..cosmology import Cosmology, GrowthTable, growth_table
from ..domain import Domain
from ..forces import ForceSpec, pm_forces, pm_forces_and_meshes, pm_forces_vjp
from .base import PMState, Stepper

__all__ = ["bullfrog", "bullfrog_coefficients", "bullfrog_from_rest"]


def bullfrog_coefficients(g: GrowthTable, a_grid, dtype=None) -> dict:
    """Per-step BullFrog factors for the boundaries ``a_grid`` (numpy, increasing; a_grid[0] may be 0).

    Returns a dict of arrays with one entry per step (jax-traceable and differentiable with respect to
    the cosmology of ``g``):

    ``half``: Delta / 2 = (D1(a_f) - D1(a_i)) / 2 (the length of each drift, in growth time);
    ``alpha``, ``beta``: the kick u_f = alpha u_i + beta F(x_h) [beta in 1 / (unit of D)];
    ``p_to_u``: 1 / G_p(a_i) (0 where a_i = 0: there is no momentum to convert, see :func:`bullfrog_from_rest`);
    ``u_to_p``: G_p(a_f);  ``a_f``: the end of each step.
    """
    a_grid = np.asarray(a_grid, dtype=np.float64)
    dtype = dtype or g.ln_a.dtype
    rest = a_grid == 0.0
    # growth quantities at the boundaries; a = 0 is evaluated at a = 1 and overwritten by the limits
    # D1 = D2 = dD2/dD1 = 0 (never log(0): its NaN would leak into gradients through jnp.where)
    a_safe = jnp.asarray(np.where(rest, 1.0, a_grid), dtype)
    at_rest = jnp.asarray(rest)
    zero = jnp.zeros((), dtype)
    d1 = jnp.where(at_rest, zero, g.D1(a_safe))
    d2 = jnp.where(at_rest, zero, g.D2(a_safe))
    slope = jnp.where(at_rest, zero, g.dD2_dD1(a_safe))  # g = dD2/dD1
    gp = g.gp(a_safe)

    d_i, d_f = d1[:-1], d1[1:]
    half = 0.5 * (d_f - d_i)
    d_h = d_i + half
    b = (d2[:-1] + slope[:-1] * half) / d_h - d_h
    alpha = (slope[1:] - b) / (slope[:-1] - b)
    beta = (1.0 - alpha) / d_h
    p_to_u = jnp.where(at_rest[:-1], zero, 1.0 / gp[:-1])
    return {"a_f": jnp.asarray(a_grid[1:], dtype), "half": half, "alpha": alpha, "beta": beta,
            "p_to_u": p_to_u, "u_to_p": gp[1:]}


def bullfrog(domain: Domain, cosmo: Cosmology, force_spec: ForceSpec = ForceSpec(), growth: GrowthTable | None = None) -> Stepper:
    """BullFrog stepper (init / coefficients / step), one force evaluation per step.

    Steps are taken between the given boundaries with the midpoint in D1 (any grid works; a grid
    uniform in D1, ``spacing="growth"``, is the paper's choice). The state holds our momentum p.
    """
    g = growth if growth is not None else growth_table(cosmo, domain.real_dtype)

    def force(dx):
        return pm_forces(domain, dx, force_spec)

    def init(dx, p, a):
        if not isinstance(a, jax.core.Tracer) and float(np.asarray(a)) <= 0.0:
            raise ValueError("bullfrog: a state at a = 0 has p = 0 and no velocity to step; use bullfrog_from_rest")
        return PMState(dx=dx, p=p, force=jnp.zeros_like(dx), a=jnp.asarray(a, domain.real_dtype))

    def coefficients(a_grid):
        return bullfrog_coefficients(g, a_grid, domain.real_dtype)

    def step(state: PMState, c) -> PMState:
        mid = pre(state, c)
        return post(mid, force(mid.dx), c)

    # a step is post(pre(state), force at the mid-step positions); reverse_* undo it (adjoint)
    def pre(state: PMState, c) -> _Mid:  # to growth-time velocity, drift half a step
        dt = state.dx.dtype
        u = c["p_to_u"].astype(dt) * state.p
        return _Mid(dx=state.dx + c["half"].astype(dt) * u, u=u)

    def post(mid: _Mid, f, c) -> PMState:  # kick with the mid-step force, drift the second half
        dt = mid.dx.dtype
        u = c["alpha"].astype(dt) * mid.u + c["beta"].astype(dt) * f
        return PMState(dx=mid.dx + c["half"].astype(dt) * u, p=c["u_to_p"].astype(dt) * u, force=f, a=c["a_f"])

    def reverse_pre(state: PMState, c) -> _Mid:  # undo the second drift (u here is the final velocity)
        dt = state.dx.dtype
        u = state.p / c["u_to_p"].astype(dt)
        return _Mid(dx=state.dx - c["half"].astype(dt) * u, u=u)

    def reverse_post(mid: _Mid, f, c, a_prev) -> PMState:  # undo the kick and the first drift
        dt = mid.dx.dtype
        u = (mid.u - c["beta"].astype(dt) * f) / c["alpha"].astype(dt)
        # the earlier state's own force (from its previous step) is not needed by BullFrog: zero
        return PMState(dx=mid.dx - c["half"].astype(dt) * u, p=u / c["p_to_u"].astype(dt), force=jnp.zeros_like(f), a=a_prev)

    return Stepper(name="bullfrog", init=init, coefficients=coefficients, step=step,
                   force_meshes=lambda dx: pm_forces_and_meshes(domain, dx, force_spec),
                   force_vjp=lambda dx, meshes, ct: pm_forces_vjp(domain, dx, meshes, ct, force_spec),
                   pre=pre, post=post, reverse_pre=reverse_pre, reverse_post=reverse_post, force_in_state=False)


class _Mid(NamedTuple):
    """Mid-step of a BullFrog step: positions at the half step, growth-time velocity u = dx/dD."""

    dx: jax.Array
    u: jax.Array


def bullfrog_from_rest(domain: Domain, cosmo: Cosmology, psi1: jax.Array, a1: float,
                       force_spec: ForceSpec = ForceSpec(), growth: GrowthTable | None = None) -> PMState:
    """The first BullFrog step from a = 0 to ``a1``, starting from 1LPT at D = 0.

    At a = 0 every particle sits on its lattice site with growth-time velocity u = dx/dD = Psi1 (the
    1LPT displacement for D1 = 1, :func:`jaxpm.lpt.lpt_displacements`) [Mpc/h]. With D_i = 0:
    b = -D_h, alpha = (g(D_1) + D_1 / 2) / (D_1 / 2) (= -5/7 in EdS). Returns the state at ``a1`` (our
    momentum p), which is 2LPT at D1(a1) to second order (exactly in EdS).
    """
    g = growth if growth is not None else growth_table(cosmo, domain.real_dtype)
    c = jax.tree_util.tree_map(lambda x: x[0], bullfrog_coefficients(g, [0.0, float(a1)], domain.real_dtype))
    psi1 = jnp.asarray(psi1, domain.real_dtype)
    # the first half drift from the lattice with u = Psi1, then the stepper's own kick and drift
    mid = _Mid(dx=c["half"].astype(psi1.dtype) * psi1, u=psi1)
    return bullfrog(domain, cosmo, force_spec, g).post(mid, pm_forces(domain, mid.dx, force_spec), c)
