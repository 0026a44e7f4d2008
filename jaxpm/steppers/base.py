"""Shared pieces of the time steppers: the state, the stepper triple, time grids and the driver.

Every stepper is a triple of pure functions (blackjax style):

    state  = stepper.init(dx, p, a)                  # PMState at a
    coeffs = stepper.coefficients(a_grid)            # per-step factors, leading axis = steps
    state  = stepper.step(state, coeffs_i)           # one step, one force evaluation

and :func:`integrate` scans any of them with ``lax.scan`` (sharding-preserving, differentiable).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import ConfigError

__all__ = ["PMState", "Stepper", "integrate", "time_grid", "SPACINGS", "AUTODIFF"]

SPACINGS = ("a", "loga", "growth")
AUTODIFF = ("checkpoint", "adjoint", "store")


class PMState(NamedTuple):
    """Particle state at scale factor ``a``.

    dx: displacement from the Lagrangian lattice [Mpc/h], shape particles + (3,).
    p: canonical momentum p = a^2 dx/dt / H0 [Mpc/h] (peculiar velocity = 100 p / a km/s).
    force: raw PM force -grad lap^{-1} delta at the particles [Mpc/h] (kept so that KDK needs one
        force evaluation per step).
    a: scale factor (scalar array).
    """

    dx: jax.Array
    p: jax.Array
    force: jax.Array
    a: jax.Array


class Stepper(NamedTuple):
    """A time stepper (blackjax-style pure functions).

    ``step(state, c)`` is built as ``post(mid, force(mid.dx), c)`` with ``mid = pre(state, c)``: all
    of a step except its one force evaluation is force-free. ``reverse_pre``/``reverse_post`` undo a
    step the same way (``state = reverse_post(r, force(r.dx), c, a_prev)``, ``r = reverse_pre(next, c)``).
    The reverse-time adjoint (:mod:`jaxpm.steppers.adjoint`) needs only these pieces, and
    ``force_in_state``: True when a step's force is evaluated at its end positions and kept in the
    state (KDK), False when it is evaluated at mid-step positions (DKD, BullFrog). A KDK adjoint uses
    ``force_and_vjp(dx, ct) -> (force, ct_dx)``; a DKD one ``force_meshes(dx) -> (force, meshes)`` and
    ``force_vjp(dx, meshes, ct) -> ct_dx``.
    """

    name: str
    init: Callable
    coefficients: Callable
    step: Callable
    force_meshes: Callable | None = None
    force_vjp: Callable | None = None
    pre: Callable | None = None
    post: Callable | None = None
    reverse_pre: Callable | None = None
    reverse_post: Callable | None = None
    force_in_state: bool = True
    force_and_vjp: Callable | None = None


def integrate(stepper: Stepper, state: PMState, a_grid, progress: Callable | None = None, step_offset: int = 0,
              total_steps: int | None = None, autodiff: str = "checkpoint") -> PMState:
    """Advance ``state`` along ``a_grid`` (a_grid[0] must be the state's a) with ``lax.scan``.

    ``progress(i, n, a)`` is called from the host as each step finishes (``jax.debug.callback``), with
    ``i`` counted from ``step_offset`` and ``n`` = ``total_steps``.

    ``autodiff`` chooses how reverse-mode gradients are taken (forward results are identical):

    * "checkpoint" (default): each step is wrapped in ``jax.checkpoint``; autodiff stores the state
      between steps (~36 B per particle per step in float32) and recomputes one step's internals in
      the backward pass. Memory grows with the number of steps; gradients are exact autodiff.
    * "adjoint": the reverse-time adjoint (:mod:`jaxpm.steppers.adjoint`); memory independent of
      the number of steps, ~3.3x a forward run's time and ~1.8x its memory (512^3 on an H200); exact
      up to the rounding of running the steps backwards.
    * "store": plain autodiff through the scan; keeps every step's internals (~300 B per particle
      per step): fastest backward pass, most memory.
    """
    if autodiff not in AUTODIFF:
        raise ConfigError("autodiff", autodiff, " or ".join(AUTODIFF))
    if autodiff == "adjoint":
        from .adjoint import integrate_adjoint

        return integrate_adjoint(stepper, state, a_grid, progress, step_offset, total_steps)
    a_grid = np.asarray(a_grid, dtype=np.float64)
    n = len(a_grid) - 1
    if n == 0:
        return state
    step = jax.checkpoint(stepper.step) if autodiff == "checkpoint" else stepper.step
    total = total_steps if total_steps is not None else n
    return scan_steps(step, state, stepper.coefficients(a_grid), step_offset, total, progress)


def scan_steps(step: Callable, state: PMState, coeffs, step_offset: int, total: int, progress: Callable | None) -> PMState:
    """``lax.scan`` of ``step`` over the per-step ``coeffs``, reporting ``progress`` from the host."""
    n = jax.tree_util.tree_leaves(coeffs)[0].shape[0]

    def body(s, xs):
        c, i = xs
        s = step(s, c)
        if progress is not None:
            jax.debug.callback(lambda ii, aa: progress(int(ii) + 1, total, float(aa)), i, s.a)
        return s, None

    state, _ = jax.lax.scan(body, state, (coeffs, jnp.arange(n) + step_offset))
    return state


def time_grid(a_init: float, a_out, n_steps: int, spacing: str = "a", growth_fn: Callable | None = None):
    """Step boundaries from ``a_init`` to ``max(a_out)``: ``n_steps`` uniform steps in a, ln a or D1,
    with every output time inserted as an extra boundary if it is not already one. ``a_init`` may be 0
    (BullFrog's start from rest) with spacing "a" or "growth".

    Returns ``(grid, out_index)``: the boundaries (numpy float64, increasing) and, for each entry of
    ``a_out``, its index in ``grid``. ``growth_fn(a) -> D1`` (numpy) is needed for spacing "growth".
    """
    a_out = np.atleast_1d(np.asarray(a_out, dtype=np.float64))
    if spacing not in SPACINGS:
        raise ConfigError("spacing", spacing, " or ".join(SPACINGS))
    if n_steps < 1:
        raise ConfigError("steps", n_steps, "an integer >= 1")
    a_end = float(a_out.max())
    if spacing == "a":
        base = np.linspace(a_init, a_end, n_steps + 1)
    elif spacing == "loga":
        if a_init <= 0:
            raise ConfigError("spacing", spacing, "'a' or 'growth' when starting from a_init = 0")
        base = np.exp(np.linspace(np.log(a_init), np.log(a_end), n_steps + 1))
    else:
        if growth_fn is None:
            raise ConfigError("spacing", spacing, "'a' or 'loga' unless a growth function is given")
        a_lo = a_init if a_init > 0 else 1e-6 * a_end  # from a = 0: D1 = 0 there, prepended below
        a_dense = np.exp(np.linspace(np.log(a_lo), np.log(a_end), 4097))
        d_dense = np.asarray(growth_fn(a_dense), dtype=np.float64)
        if a_init <= 0:
            a_dense, d_dense = np.concatenate([[0.0], a_dense]), np.concatenate([[0.0], d_dense])
        base = np.interp(np.linspace(d_dense[0], d_dense[-1], n_steps + 1), d_dense, a_dense)
        base[0], base[-1] = a_init, a_end
    grid = np.array(base)
    for a in a_out:
        if np.min(np.abs(grid - a)) > 1e-9 * a:
            grid = np.sort(np.append(grid, a))
    out_index = [int(np.argmin(np.abs(grid - a))) for a in a_out]
    return grid, out_index
