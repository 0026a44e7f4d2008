"""Reverse-time adjoint of the symplectic steppers: gradients in memory independent of the steps.

The forward pass keeps only the final state. The backward pass runs the steps backwards,
reconstructing each earlier state from the later one (the KDK steps are exactly invertible in exact
arithmetic), and carries the cotangents through each step with its vector-Jacobian product, as pmwd
does. Memory: the state, its cotangent and one set of force meshes, whatever the number of steps.

Cost of the backward pass per step: one force evaluation (to reconstruct the earlier state, which
also yields the force meshes needed next) and one hand-written force VJP
(:func:`jaxpm.forces.pm_forces_vjp`, about one more force), plus one force VJP at the end for the
initial state's force (KDK; the incoming force is not differentiated through its evaluation, see
:func:`integrate_adjoint`). Measured on an H200 (2LPT + 10 steps at 512^3, float32; benchmarks/README.md):
the gradient takes 3.54x the forward run's time and 2.59x its compiled memory (38.9 GiB; the peak does not
grow with steps: equal for 10 and 40 in every measured version), down from 4.0x and 3.5x before the painting
looped over stencil nodes (one node's index arrays alive at a time), the force VJP was reordered and its
three cotangent columns were painted as one interleaved scatter (3.95x before that).

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
    if stepper.reverse_pre is None or stepper.force_vjp is None:
        raise ConfigError("autodiff", "adjoint", f"'checkpoint' or 'store' with the stepper {stepper.name!r} (it has no reverse step yet)")
    a_grid = np.asarray(a_grid, dtype=np.float64)
    if len(a_grid) < 2:
        return state
    coeffs = stepper.coefficients(a_grid)
    a_prev = jnp.asarray(a_grid[:-1], state.dx.dtype)
    if stepper.force_in_state:
        # A KDK state's force is F(state.dx) (``init``, or the end of an earlier step). The backward
        # pass turns its cotangent into one of dx with one more force VJP at the initial positions
        # (see run_bwd), so outer autodiff must not differentiate how it was computed: otherwise it
        # would keep that force evaluation's residuals alive through the whole backward pass.
        state = state._replace(force=jax.lax.stop_gradient(state.force))
    run = _make_adjoint_scan(stepper, progress, step_offset,
                             total_steps if total_steps is not None else len(a_grid) - 1)
    return run(state, coeffs, a_prev)


def _make_adjoint_scan(stepper, progress, offset, total):
    force_meshes, force_vjp = stepper.force_meshes, stepper.force_vjp

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
        if stepper.force_in_state:  # KDK: a step's force is evaluated at its end positions (the next state)
            _, meshes = force_meshes(out.dx)
        else:  # DKD (BullFrog): at the mid-step positions, which the reconstruction itself visits
            meshes = jnp.zeros(jax.eval_shape(force_meshes, out.dx)[1].shape, out.dx.dtype)

        def back(carry, xs):
            s_next, lam_next, meshes_next = carry
            c, a_p = xs
            # reconstruct the earlier state (one force evaluation, which also gives its meshes)
            r = stepper.reverse_pre(s_next, c)
            f_r, meshes_r = force_meshes(r.dx)
            s_prev = stepper.reverse_post(r, f_r, c, a_p)
            # the force this step used, where it was evaluated, and the meshes to differentiate it
            # (the cotangents below need nothing of the reconstruction for KDK; XLA already orders
            # them so that the force and the force VJP are not alive at once: an optimization
            # barrier forcing that order measured no difference)
            if stepper.force_in_state:
                f_step, x_step, m_step = s_next.force, s_next.dx, meshes_next
            else:
                f_step, x_step, m_step = f_r, r.dx, meshes_r
            # cotangents through post, the force, and pre
            mid, vjp_pre = jax.vjp(stepper.pre, s_prev, c)
            _, vjp_post = jax.vjp(stepper.post, mid, f_step, c)
            lam_mid, lam_f, lam_c_post = vjp_post(lam_next)
            lam_mid = lam_mid._replace(dx=lam_mid.dx + force_vjp(x_step, m_step, lam_f))
            lam_prev, lam_c_pre = vjp_pre(lam_mid)
            lam_c = jax.tree_util.tree_map(jnp.add, lam_c_pre, lam_c_post)
            return (s_prev, lam_prev, meshes_r), lam_c

        (s0, lam0, meshes0), lam_coeffs = jax.lax.scan(back, (out, ct, meshes), (coeffs, a_prev), reverse=True)
        if stepper.force_in_state:
            # the initial state's force is F(s0.dx) (stopped in integrate_adjoint): its cotangent goes
            # to dx through one more force VJP, with the meshes the last reconstruction left
            lam0 = lam0._replace(dx=lam0.dx + force_vjp(s0.dx, meshes0, lam0.force), force=jnp.zeros_like(lam0.force))
        return lam0, lam_coeffs, jnp.zeros_like(a_prev)

    run.defvjp(run_fwd, run_bwd)
    return run
