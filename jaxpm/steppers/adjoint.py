"""Reverse-time adjoint of the symplectic steppers: gradients in memory independent of the steps.

The forward pass keeps only the final state. The backward pass runs the steps backwards,
reconstructing each earlier state from the later one (the KDK steps are exactly invertible in exact
arithmetic), and carries the cotangents through each step with its vector-Jacobian product, as pmwd
does. Memory: the state, its cotangent and one force evaluation's meshes, whatever the number of steps.

Cost of the backward pass per step (KDK): one call of ``force_and_vjp`` at the reconstructed
positions (:func:`jaxpm.forces.pm_forces_and_vjp`): the force there (to undo the first kick) and the
force's VJP there, sharing one 4-mesh scatter and one gather pass, plus one such call at the final
positions. DKD (BullFrog): one force evaluation and one force VJP on its meshes. Measured on an H200
(2LPT + 10 / 40 FastPM steps at 512^3, float32, 2026-12-02; benchmarks/README.md): the gradient takes
3.31x / 3.43x the forward run's time and 1.83x its compiled memory (27.4 GiB, equal for 10 and 40 steps),
down from 4.0x and 3.5x before the painting looped over stencil nodes, and from 3.54x and 2.59x before
the force and its VJP were fused (they were separate calls a step apart, each with its own passes, and
the carry held a second set of force meshes). On an H100 (2026-12-07), with the force values and the
position gradient read in one gather (``jaxpm.painting._gather``): 2.99x the time and 1.46x the compiled
memory (21.9 GiB) at 10 steps.

The reconstruction is exact only up to rounding. Measured (jax 0.10.2, CPU; tests/test_adjoint.py):

=========================================  =========  =========
32^3 in 128 Mpc/h, FastPM a = 0.02 -> 1      float64    float32
=========================================  =========  =========
forward then backward, rms dx error [1]     8e-15      5e-6 (10-40 steps: 4e-6 - 5e-6)
forward then backward, rms p error [2]      8e-13      5e-4 (10-40 steps: 6e-4 - 4e-4)
adjoint vs autodiff gradient, rms / std     5e-16      3e-7 (32^3, 10 steps; pmwd reports 2.7e-3)
=========================================  =========  =========

[1] relative to the rms distance travelled; [2] relative to the rms initial momentum.

A stepper supports the adjoint if it provides ``pre``, ``post``, ``reverse_pre`` and
``reverse_post``, ``force_meshes`` and ``force_vjp`` (see :class:`jaxpm.steppers.base.Stepper`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import ConfigError
from .base import PMState, Stepper, scan_steps

__all__ = ["integrate_adjoint"]


def integrate_adjoint(stepper: Stepper, state: PMState, a_grid, progress=None, step_offset: int = 0,
                      total_steps: int | None = None) -> PMState:
    """Like :func:`jaxpm.steppers.integrate`, with a reverse-time adjoint for reverse-mode autodiff."""
    kdk_ready = stepper.force_and_vjp is not None if stepper.force_in_state else stepper.force_vjp is not None
    if stepper.reverse_pre is None or not kdk_ready:
        raise ConfigError("autodiff", "adjoint", f"'checkpoint' or 'store' with the stepper {stepper.name!r} (it has no reverse step yet)")
    a_grid = np.asarray(a_grid, dtype=np.float64)
    if len(a_grid) < 2:
        return state
    coeffs = stepper.coefficients(a_grid)
    a_prev = jnp.asarray(a_grid[:-1], state.dx.dtype)
    if stepper.force_in_state:
        # A KDK state's force is F(state.dx) (``init``, or the end of an earlier step). The backward
        # pass turns its cotangent into one of dx with the force VJP at the initial positions (see
        # _backward_kdk), so outer autodiff must not differentiate how it was computed: otherwise it
        # would keep that force evaluation's residuals alive through the whole backward pass.
        state = state._replace(force=jax.lax.stop_gradient(state.force))
    run = _make_adjoint_scan(stepper, progress, step_offset,
                             total_steps if total_steps is not None else len(a_grid) - 1)
    return run(state, coeffs, a_prev)


def _make_adjoint_scan(stepper, progress, offset, total):
    def forward(state, coeffs, a_prev):
        return scan_steps(stepper.step, state, coeffs, offset, total, progress)

    @jax.custom_vjp
    def run(state, coeffs, a_prev):
        return forward(state, coeffs, a_prev)

    def run_fwd(state, coeffs, a_prev):
        out = forward(state, coeffs, a_prev)
        return out, (out, coeffs, a_prev)

    def run_bwd(res, ct):
        out, coeffs, a_prev = res
        backward = _backward_kdk if stepper.force_in_state else _backward_dkd
        lam0, lam_coeffs = backward(stepper, out, ct, coeffs, a_prev)
        return lam0, lam_coeffs, jnp.zeros_like(a_prev)

    run.defvjp(run_fwd, run_bwd)
    return run


def _backward_kdk(stepper, out, ct, coeffs, a_prev):
    """Backward pass of a KDK stepper (force at a step's end positions, kept in the state).

    Each reconstructed position x_m needs the force there (to undo the first kick) and the force's
    VJP there. The VJP's cotangent is known before the force is: a state's force is used only
    linearly (the kicks), so its cotangent follows from the state's cotangent, which the later step
    already gave. So both come from one ``force_and_vjp`` call (shared painting and read-out passes,
    :func:`jaxpm.forces.pm_forces_and_vjp`), and the cotangent carried between steps already holds the
    force VJP at its positions. Force evaluations: one per step plus one at the final positions.
    """
    force_and_vjp = stepper.force_and_vjp
    tmap = jax.tree_util.tree_map
    c_last = tmap(lambda x: x[-1], coeffs)
    # each step's predecessor's coefficients (the first step has none: its force is the initial one)
    c_before = tmap(lambda x: jnp.concatenate([x[:1], x[:-1]]), coeffs)
    first = jnp.arange(a_prev.shape[0]) == 0

    def force_cotangent(lam, r, c_b):
        # cotangent of the force kept in a state, given the state's cotangent ``lam``: the force went
        # into the state through the previous step's ``post`` (its second kick and the force slot),
        # which is linear in it, so any primal (``r``, the state's force slot) gives the same VJP
        _, vjp_f = jax.vjp(lambda f: stepper.post(r, f, c_b), lam.force)
        return vjp_f(lam)[0]

    r_end = stepper.reverse_pre(out, c_last)
    _, g_end = force_and_vjp(out.dx, force_cotangent(ct, r_end, c_last))
    lam_end = ct._replace(dx=ct.dx + g_end)

    def back(carry, xs):
        s_next, lam_next = carry  # lam_next already holds the force VJP at s_next.dx
        c, a_p, c_b, is_first = xs
        r = stepper.reverse_pre(s_next, c)  # positions x_m, half-step momentum
        # cotangents through post (its force's cotangent is already spent) and the state part of pre
        # (linear in the state: the later state stands in for the primal)
        _, vjp_post = jax.vjp(stepper.post, r, s_next.force, c)
        lam_mid, _, lam_c_post = vjp_post(lam_next)
        _, vjp_pre_state = jax.vjp(lambda s: stepper.pre(s, c), s_next)
        (lam_prev,) = vjp_pre_state(lam_mid)
        lam_f = jnp.where(is_first, lam_prev.force, force_cotangent(lam_prev, r, c_b))
        f_r, g = force_and_vjp(r.dx, lam_f)
        s_prev = stepper.reverse_post(r, f_r, c, a_p)
        # pre's coefficient cotangent needs the reconstructed state itself
        _, vjp_pre_c = jax.vjp(lambda cc: stepper.pre(s_prev, cc), c)
        (lam_c_pre,) = vjp_pre_c(lam_mid)
        lam_prev = lam_prev._replace(dx=lam_prev.dx + g)
        return (s_prev, lam_prev), tmap(jnp.add, lam_c_pre, lam_c_post)

    (_, lam0), lam_coeffs = jax.lax.scan(back, (out, lam_end), (coeffs, a_prev, c_before, first), reverse=True)
    # the initial force's cotangent went to dx in the first step's call (it was stopped in integrate_adjoint)
    return lam0._replace(force=jnp.zeros_like(lam0.force)), lam_coeffs


def _backward_dkd(stepper, out, ct, coeffs, a_prev):
    """Backward pass of a DKD stepper (BullFrog: force at mid-step positions, which the reconstruction
    visits): one force evaluation per step, whose meshes the force VJP of the same step reuses."""
    force_meshes, force_vjp = stepper.force_meshes, stepper.force_vjp

    def back(lam_and_state, xs):
        s_next, lam_next = lam_and_state
        c, a_p = xs
        r = stepper.reverse_pre(s_next, c)
        f_r, meshes_r = force_meshes(r.dx)
        s_prev = stepper.reverse_post(r, f_r, c, a_p)
        mid, vjp_pre = jax.vjp(stepper.pre, s_prev, c)
        _, vjp_post = jax.vjp(stepper.post, mid, f_r, c)
        lam_mid, lam_f, lam_c_post = vjp_post(lam_next)
        lam_mid = lam_mid._replace(dx=lam_mid.dx + force_vjp(r.dx, meshes_r, lam_f))
        lam_prev, lam_c_pre = vjp_pre(lam_mid)
        return (s_prev, lam_prev), jax.tree_util.tree_map(jnp.add, lam_c_pre, lam_c_post)

    (_, lam0), lam_coeffs = jax.lax.scan(back, (out, ct), (coeffs, a_prev), reverse=True)
    return lam0, lam_coeffs
