"""Adaptive ODE path through diffrax (Dopri5, Tsit5, Dopri8 with a PID step-size controller).

Useful as a converged reference and for accuracy studies; the KDK steppers are faster per force
evaluation. Note that diffrax gathers its saved output to one device when the state is sharded.
"""

from __future__ import annotations

import diffrax
import jax.numpy as jnp

from ..cosmology import Cosmology, E
from ..domain import Domain
from ..forces import ForceSpec, pm_forces

__all__ = ["ADAPTIVE_SOLVERS", "solve_adaptive"]

ADAPTIVE_SOLVERS = {"dopri5": diffrax.Dopri5, "tsit5": diffrax.Tsit5, "dopri8": diffrax.Dopri8}


def solve_adaptive(domain: Domain, cosmo: Cosmology, dx, p, a_init, a_out, solver: str = "dopri5",
                   force_spec: ForceSpec = ForceSpec(), rtol: float = 1e-5, atol: float = 1e-5, max_steps: int = 4096):
    """Integrate ``(dx, p)`` from ``a_init`` and return ``(dx, p)`` stacked over ``a_out`` (leading axis).

    Equations of motion: dx/da = p / (a^3 E), dp/da = 1.5 Omega_m F / (a^2 E).
    """
    dt = domain.real_dtype

    def vector_field(a, y, args):
        x, mom = y
        ea = E(cosmo, a)
        f = pm_forces(domain, x, force_spec)
        return ((mom / (a**3 * ea)).astype(dt), (1.5 * cosmo.Omega_m * f / (a**2 * ea)).astype(dt))

    a_out = jnp.asarray(a_out, dt)
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(vector_field),
        ADAPTIVE_SOLVERS[solver](),
        t0=jnp.asarray(a_init, dt),
        t1=a_out[-1],
        dt0=jnp.asarray(0.05 * (float(a_out[-1]) - float(a_init)), dt),
        y0=(dx, p),
        saveat=diffrax.SaveAt(ts=a_out),
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
        max_steps=max_steps,
    )
    return sol.ys, sol.stats["num_steps"]
