"""Unadjusted MCLMC (blackjax 1.7.1), tuned to a target energy-error variance per dimension.

Warm-up: ``mclmc_find_L_and_step_size`` with ``desired_energy_var`` = target EEVPD (reference 1e-6),
diagonal preconditioning, the ESS-based L stage skipped (frac_tune3 = 0, as the reference: too costly at
1e5-1e6 dimensions). Then step size and inverse mass matrix = median over chains, and the momentum
decoherence length is set by Robnik's rule from a pilot guess of the gradient evaluations per effective
sample, ``L = l_factor * step_size * pilot_evals_per_ess / 2`` (reference: 0.4 and 1000).

Calibration (ours, after the median): blackjax's tuner is per chain and its running estimate can end far
from the target (measured: EEVPD 5e-11 for a 1e-6 target at 64^3 on an H200, i.e. steps ~5x too small and
~5x more gradients per effective sample). The runner therefore measures the EEVPD of the shared
parameters over all chains for a few transitions and :func:`calibrate` rescales the step size by
``(target / measured)^(1/6)`` (Var[dE] ~ eps^6 for the McLachlan integrator; at most x4 or /4 per round)
until three consecutive measurements are within ``calibration_band`` (default 1.5) of the target; L follows
the step size. Increases stop at ``calibration_max_increase`` (default 2) times the tuned step size: while
the chains still relax from the initialisation the energy error keeps falling, so the rounds kept raising
the step (1.9 -> 5.0 on an H200 at 64^3), and at 5.0 the chains blew up within 50 draws (EEVPD 1e-1 to
1e2, some chains frozen at 1e-17).

Dense scalar block (option ``dense_scalars``, with the runner's scalar-mass windows): the inverse mass is
blackjax's low-rank + diagonal form, ``diag(s) (I + U (Lambda - I) U^T) diag(s)`` with ``U`` nonzero only
in the rows of the ``n_scalars`` leading (scalar) coordinates, so the scalars get a full covariance
(``params["scalar_U"]``, ``params["scalar_lam"]``: the eigenvectors and eigenvalues of their correlation
matrix) and the field keeps its diagonal. ``combine`` starts from ``U = I, Lambda = 1`` (exactly the
diagonal mass), so the parameters' structure, and the compiled programs, do not change when the windows
fill them in. Why: the data fix the amplitude b1 sigma8 far better than either (at 16^3, in an unconverged
CPU run of 2026-12-02, the posterior correlation of sigma8 and b1 was -0.68), a ridge a diagonal mass cannot follow.
"""

from __future__ import annotations

import blackjax
import jax.numpy as jnp
from blackjax.mcmc.integrators import isokinetic_mclachlan
from blackjax.mcmc.metrics import LowRankInverseMassMatrix

from . import Sampler, StepInfo, median_params


def make(logdensity_fn, opts: dict) -> Sampler:
    target = float(opts.get("target_eevpd", 1e-6))
    pilot = float(opts.get("pilot_evals_per_ess", 1000.0))
    l_factor = float(opts.get("l_factor", 0.4))
    diag = bool(opts.get("diagonal_preconditioning", True))
    band = float(opts.get("calibration_band", 1.5))
    max_increase = float(opts.get("calibration_max_increase", 2.0))
    n_dense = int(opts.get("n_scalars", 0)) if bool(opts.get("dense_scalars", False)) else 0
    kernel = blackjax.mcmc.mclmc.build_kernel(integrator=isokinetic_mclachlan)

    def warmup(key, x0, num_steps):
        k0, k1 = _split(key)
        st = blackjax.mcmc.mclmc.init(position=x0, logdensity_fn=logdensity_fn, rng_key=k0)
        st, par, n_tune = blackjax.mclmc_find_L_and_step_size(
            mclmc_kernel=kernel, num_steps=num_steps, state=st, rng_key=k1, logdensity_fn=logdensity_fn,
            frac_tune1=0.5, frac_tune2=0.5, frac_tune3=0.0, desired_energy_var=target,
            diagonal_preconditioning=diag)
        return st, {"step_size": par.step_size, "inverse_mass_matrix": par.inverse_mass_matrix}, 2 * n_tune

    def combine(params):
        p = median_params(params)
        p["L"] = l_factor * p["step_size"] * pilot / 2.0
        p["tuned_step_size"] = p["step_size"]
        if n_dense:
            dt = p["inverse_mass_matrix"].dtype
            p["scalar_U"], p["scalar_lam"] = jnp.eye(n_dense, dtype=dt), jnp.ones(n_dense, dt)
        return p

    def calibrate(params, measured):
        ok = target / band <= measured <= target * band
        if ok or not measured > 0:  # nothing measured (all steps rejected): leave it to the alarms
            return params, ok
        factor = min(4.0, max(0.25, (target / measured) ** (1.0 / 6.0)))
        cap = max_increase * params["tuned_step_size"]
        if measured < target and params["step_size"] >= cap * (1 - 1e-9):
            return params, True  # too small an energy error, but at the cap: accepted as is
        factor = min(factor, float(cap / params["step_size"]))
        p = dict(params)
        p["step_size"] = params["step_size"] * factor
        p["L"] = params["L"] * factor
        return p, False

    def step(key, state, params):
        st, info = kernel(key, state, logdensity_fn, inverse_mass(params), params["L"], params["step_size"])
        bad = ~jnp.isfinite(info.logdensity) | ~info.nonans
        return st, StepInfo(jnp.asarray(2, jnp.int32), info.energy_change**2, jnp.ones_like(info.logdensity),
                            bad, info.logdensity)

    return Sampler("mclmc", warmup, combine, step, lambda s: s.position, adjusted=False, calibrate=calibrate)


def inverse_mass(params):
    """The inverse mass matrix blackjax takes: the diagonal, or with a dense scalar block (``scalar_U``)
    the low-rank + diagonal form whose scalar block is ``diag(s) U Lambda U^T diag(s)``, s^2 = the
    diagonal entries (the scalars' variances when U Lambda U^T is their correlation matrix)."""
    inv = params["inverse_mass_matrix"]
    if "scalar_U" not in params:
        return inv
    u = params["scalar_U"]
    full = jnp.zeros((inv.shape[0], u.shape[1]), u.dtype).at[: u.shape[0]].set(u)
    return LowRankInverseMassMatrix(sigma=jnp.sqrt(inv), U=full, lam=params["scalar_lam"])


def _split(key):
    import jax

    k = jax.random.split(key)
    return k[0], k[1]
