"""One entry point for a whole run: linear field -> LPT -> steps -> snapshots.

``simulate`` is a pure, traceable function of (cosmology, linear field): wrap it in ``jax.jit`` or
differentiate it; the numerical settings (domain, times, stepper) are static.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import jax
import numpy as np

from .cosmology import Cosmology, growth_table
from .domain import Domain
from .errors import ConfigError
from .forces import ForceSpec
from .lpt import lpt, lpt_displacements
from .steppers import ADAPTIVE_SOLVERS, AUTODIFF, STEPPERS, bullfrog_from_rest, integrate, solve_adaptive, time_grid

__all__ = ["Snapshot", "simulate", "make_time_grid", "ALL_STEPPERS"]

ALL_STEPPERS = tuple(STEPPERS) + tuple(ADAPTIVE_SOLVERS)


class Snapshot(NamedTuple):
    """Particles at scale factor ``a``: displacement ``dx`` and momentum ``p`` [Mpc/h]."""

    a: float
    dx: jax.Array
    p: jax.Array


def make_time_grid(cosmo: Cosmology, a_init: float, a_out: Sequence[float], steps: int, spacing: str = "a"):
    """Step boundaries (numpy) and output indices; see :func:`jaxpm.steppers.time_grid`.

    Spacing "growth" evaluates D1 of ``cosmo``, which must then hold concrete values (the grid is a
    numerical choice and is not differentiated).
    """
    growth_fn = None
    if spacing == "growth":
        if any(isinstance(getattr(cosmo, n), jax.core.Tracer) for n in ("Omega_m", "w0", "wa")):
            raise ConfigError("spacing", spacing, "'a' or 'loga' when the cosmology is traced (or pass a_grid)")
        def growth_fn(a):  # concrete even inside jax.jit (the grid is static)
            with jax.ensure_compile_time_eval():
                return np.asarray(growth_table(cosmo).D1(a))
    return time_grid(a_init, a_out, steps, spacing, growth_fn)


def simulate(domain: Domain, cosmo: Cosmology, delta_lin: jax.Array, *, a_init: float = 0.1,
             a_out: Sequence[float] = (1.0,), steps: int = 10, stepper: str = "fastpm", spacing: str = "a",
             lpt_order: int = 2, force: ForceSpec = ForceSpec(), a_grid=None,
             progress: Callable | None = None, rtol: float = 1e-5, atol: float = 1e-5,
             autodiff: str = "checkpoint") -> list[Snapshot]:
    """Evolve the linear field ``delta_lin`` (a = 1, particle grid) to each scale factor in ``a_out``.

    Args:
        a_init: scale factor of the LPT initial conditions. With ``stepper="bullfrog"`` it may be 0:
            the first step then starts from the lattice with the growth-time velocity dx/dD1 = Psi1
            (1LPT at D1 = 0, :func:`jaxpm.steppers.bullfrog_from_rest`) and ``lpt_order`` is unused.
        a_out: increasing output scale factors, each > a_init.
        steps: number of steps of the base grid (output times are added as step boundaries).
        stepper: "fastpm", "bullfrog", "leapfrog" (one force per step) or an adaptive diffrax solver
            ("dopri5", "tsit5", "dopri8"; ``rtol``/``atol`` control it and ``steps`` is ignored).
        spacing: base grid uniform in "a", "loga" or "growth" (D1; BullFrog's natural choice).
        lpt_order: 1 or 2.
        a_grid: explicit step boundaries (overrides steps/spacing); must contain every a_out.
        progress: ``progress(step, total, a)`` called on the host as steps finish.
        autodiff: how reverse-mode gradients through the steps are taken: "checkpoint" (default),
            "adjoint" (memory independent of the number of steps) or "store"; see
            :func:`jaxpm.steppers.integrate`. Forward results do not depend on it. Adaptive solvers
            always use diffrax's own checkpointed autodiff.

    Returns:
        One :class:`Snapshot` per entry of ``a_out``.
    """
    a_out = [float(a) for a in a_out]
    if stepper not in ALL_STEPPERS:
        raise ConfigError("stepper", stepper, " or ".join(ALL_STEPPERS))
    if autodiff not in AUTODIFF:
        raise ConfigError("autodiff", autodiff, " or ".join(AUTODIFF))
    if any(a <= a_init for a in a_out) or sorted(a_out) != a_out:
        raise ConfigError("a_out", a_out, f"increasing scale factors after a_init = {a_init}")
    if a_init < 0 or (a_init == 0 and stepper != "bullfrog"):
        raise ConfigError("a_init", a_init, "a_init > 0 (a_init = 0 only with stepper 'bullfrog')")
    growth = growth_table(cosmo, domain.real_dtype)
    from_rest = a_init == 0
    if not from_rest:
        dx, p = lpt(domain, cosmo, delta_lin, a_init, lpt_order, growth=growth)

    if stepper in ADAPTIVE_SOLVERS:
        (xs, ps), _ = solve_adaptive(domain, cosmo, dx, p, a_init, a_out, stepper, force, rtol, atol)
        return [Snapshot(a, xs[i], ps[i]) for i, a in enumerate(a_out)]

    if a_grid is None:
        grid, out_index = make_time_grid(cosmo, a_init, a_out, steps, spacing)
    else:
        grid = np.asarray(a_grid, dtype=np.float64)
        out_index = [int(np.argmin(np.abs(grid - a))) for a in a_out]
        if abs(grid[0] - a_init) > 1e-12 or any(abs(grid[i] - a) > 1e-9 for i, a in zip(out_index, a_out)):
            raise ConfigError("a_grid", "given grid", "boundaries starting at a_init and containing every a_out")
    st = STEPPERS[stepper](domain, cosmo, force, growth)
    if from_rest:  # the first step, a = 0 -> grid[1], in velocity variables; then on as usual
        psi1, _ = lpt_displacements(domain, delta_lin, 1)
        state = bullfrog_from_rest(domain, cosmo, psi1, grid[1], force, growth)
        if progress is not None:
            total = len(grid) - 1
            jax.debug.callback(lambda aa: progress(1, total, float(aa)), state.a)
        grid, out_index = grid[1:], [i - 1 for i in out_index]
        offset = 1
    else:
        state = st.init(dx, p, grid[0])
        offset = 0
    snaps, start = [], 0
    for a, stop in zip(a_out, out_index):
        state = integrate(st, state, grid[start:stop + 1], progress, step_offset=start + offset,
                          total_steps=len(grid) - 1 + offset, autodiff=autodiff)
        snaps.append(Snapshot(a, state.dx, state.p))
        start = stop
    return snaps
