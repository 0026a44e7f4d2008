"""Kick-drift-kick steppers: FastPM (growth-exact factors) and plain leapfrog.

Both take one force evaluation per step (the force at the end of a step is kept in the state for
the first kick of the next). Equations of motion, in the units of :mod:`jaxpm.forces`:

    dx/da = p / (a^3 E),      dp/da = 1.5 Omega_m F / (a^2 E).

**FastPM** (Feng et al. 2016): with a_c the midpoint of a step,

    kick  a_i -> a_c :  p += F(a_i) [G_p(a_c) - G_p(a_i)] / D1(a_i)
    drift a_i -> a_f :  x += p(a_c) [D1(a_f) - D1(a_i)] / G_p(a_c)
    kick  a_c -> a_f :  p += F(a_f) [G_p(a_f) - G_p(a_c)] / D1(a_f)

with G_p = a^3 E dD1/da. For a linear (Zel'dovich growing-mode) field F = D1 Psi and p = G_p Psi,
so each factor is exact and linear growth is reproduced for any step size.

**Leapfrog**: the same splitting with the integrands frozen at the point of evaluation,
kick ``1.5 Omega_m (a_c - a_i) / (a_i^2 E(a_i))``, drift ``(a_f - a_i) / (a_c^3 E(a_c))``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from ..cosmology import Cosmology, E, GrowthTable, growth_table
from ..domain import Domain
from ..forces import ForceSpec, pm_forces, pm_forces_and_vjp
from .base import PMState, Stepper

__all__ = ["fastpm", "leapfrog"]


def _midpoints(a_grid):
    a_i, a_f = a_grid[:-1], a_grid[1:]
    return a_i, 0.5 * (a_i + a_f), a_f


class _Drifted(NamedTuple):
    """Mid-step of a KDK step: positions at a_f, momentum at the half step."""

    dx: jax.Array
    p: jax.Array


def _kdk(name, domain: Domain, force_spec: ForceSpec, factors):
    def force(dx):
        return pm_forces(domain, dx, force_spec)

    def init(dx, p, a):
        return PMState(dx=dx, p=p, force=force(dx), a=jnp.asarray(a, domain.real_dtype))

    def coefficients(a_grid):
        a_i, a_c, a_f = (jnp.asarray(x, domain.real_dtype) for x in _midpoints(a_grid))
        k1, d, k2 = factors(a_i, a_c, a_f)
        return {"a_f": a_f, "kick1": k1, "drift": d, "kick2": k2}

    def pre(state: PMState, c) -> _Drifted:  # kick to the half step, drift the whole step
        dt = state.dx.dtype
        p = state.p + c["kick1"].astype(dt) * state.force
        return _Drifted(dx=state.dx + c["drift"].astype(dt) * p, p=p)

    def post(mid: _Drifted, f, c) -> PMState:  # kick the second half with the new force
        return PMState(dx=mid.dx, p=mid.p + c["kick2"].astype(mid.p.dtype) * f, force=f, a=c["a_f"])

    def reverse_pre(state: PMState, c) -> _Drifted:  # undo the second kick and the drift
        dt = state.dx.dtype
        p = state.p - c["kick2"].astype(dt) * state.force
        return _Drifted(dx=state.dx - c["drift"].astype(dt) * p, p=p)

    def reverse_post(mid: _Drifted, f, c, a_prev) -> PMState:  # undo the first kick
        return PMState(dx=mid.dx, p=mid.p - c["kick1"].astype(mid.p.dtype) * f, force=f, a=a_prev)

    def step(state: PMState, c) -> PMState:
        mid = pre(state, c)
        return post(mid, force(mid.dx), c)

    return Stepper(name=name, init=init, coefficients=coefficients, step=step,
                   force_and_vjp=lambda dx, ct: pm_forces_and_vjp(domain, dx, ct, force_spec),
                   pre=pre, post=post, reverse_pre=reverse_pre, reverse_post=reverse_post)


def fastpm(domain: Domain, cosmo: Cosmology, force_spec: ForceSpec = ForceSpec(), growth: GrowthTable | None = None):
    """FastPM kick-drift-kick stepper (linear growth exact at large scales)."""
    g = growth if growth is not None else growth_table(cosmo, domain.real_dtype)

    def factors(a_i, a_c, a_f):
        kick1 = (g.gp(a_c) - g.gp(a_i)) / g.D1(a_i)
        drift = (g.D1(a_f) - g.D1(a_i)) / g.gp(a_c)
        kick2 = (g.gp(a_f) - g.gp(a_c)) / g.D1(a_f)
        return kick1, drift, kick2

    return _kdk("fastpm", domain, force_spec, factors)


def leapfrog(domain: Domain, cosmo: Cosmology, force_spec: ForceSpec = ForceSpec(), growth: GrowthTable | None = None):
    """Plain kick-drift-kick leapfrog in a (integrands evaluated at the kick/drift points)."""
    om = cosmo.Omega_m

    def factors(a_i, a_c, a_f):
        kick1 = 1.5 * om * (a_c - a_i) / (a_i**2 * E(cosmo, a_i))
        drift = (a_f - a_i) / (a_c**3 * E(cosmo, a_c))
        kick2 = 1.5 * om * (a_f - a_c) / (a_f**2 * E(cosmo, a_f))
        return kick1, drift, kick2

    return _kdk("leapfrog", domain, force_spec, factors)
