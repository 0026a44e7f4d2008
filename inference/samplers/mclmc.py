"""Unadjusted MCLMC (blackjax 1.7.1), tuned to a target energy-error variance per dimension.

Warm-up: ``mclmc_find_L_and_step_size`` with ``desired_energy_var`` = target EEVPD (reference 1e-6),
diagonal preconditioning, the ESS-based L stage skipped (frac_tune3 = 0, as the reference: too costly at
1e5-1e6 dimensions). Then step size and inverse mass matrix = median over chains, and the momentum
decoherence length is set by Robnik's rule from a pilot guess of the gradient evaluations per effective
sample, ``L = l_factor * step_size * pilot_evals_per_ess / 2`` (reference: 0.4 and 1000).
"""

from __future__ import annotations

import blackjax
import jax.numpy as jnp
from blackjax.mcmc.integrators import isokinetic_mclachlan

from . import Sampler, StepInfo, median_params


def make(logdensity_fn, opts: dict) -> Sampler:
    target = float(opts.get("target_eevpd", 1e-6))
    pilot = float(opts.get("pilot_evals_per_ess", 1000.0))
    l_factor = float(opts.get("l_factor", 0.4))
    diag = bool(opts.get("diagonal_preconditioning", True))
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
        return p

    def step(key, state, params):
        st, info = kernel(key, state, logdensity_fn, params["inverse_mass_matrix"], params["L"], params["step_size"])
        bad = ~jnp.isfinite(info.logdensity) | ~info.nonans
        return st, StepInfo(jnp.asarray(2, jnp.int32), info.energy_change**2, jnp.ones_like(info.logdensity),
                            bad, info.logdensity)

    return Sampler("mclmc", warmup, combine, step, lambda s: s.position, adjusted=False)


def _split(key):
    import jax

    k = jax.random.split(key)
    return k[0], k[1]
