"""Adjusted MCLMC (MAMS, blackjax 1.7.1 ``adjusted_mclmc_dynamic``) with an explicit trajectory length.

Warm-up: ``adjusted_mclmc_find_L_and_step_size`` on the dynamic kernel (target acceptance, default 0.9,
the authors' advice), diagonal preconditioning. That tuner calibrates the step size at L = 2 step sizes
and returns that L (MALA-like); as in the reference we instead set the average trajectory length by hand,
``L = l_factor * step_size * pilot_evals_per_ess / 2`` (reference: 0.3 and 500, i.e. 75 step sizes),
with random trajectory lengths (Halton-jittered) around it.
"""

from __future__ import annotations

import blackjax
import jax
import jax.numpy as jnp
from blackjax.mcmc import adjusted_mclmc_dynamic as amd
from blackjax.mcmc.integrators import isokinetic_mclachlan

from . import Sampler, StepInfo, median_params


def make(logdensity_fn, opts: dict) -> Sampler:
    target = float(opts.get("target_accept", 0.9))
    pilot = float(opts.get("pilot_evals_per_ess", 500.0))
    l_factor = float(opts.get("l_factor", 0.3))
    nfn = amd.make_random_trajectory_length_fn(True)
    kernel = amd.build_kernel(integration_steps_fn=nfn, integrator=isokinetic_mclachlan)

    def tune_kernel(rng_key, state, logdensity_fn, step_size, inverse_mass_matrix, integration_steps_params):
        return kernel(rng_key, state, logdensity_fn, step_size, L_proposal_factor=jnp.inf,
                      inverse_mass_matrix=inverse_mass_matrix, integration_steps_params=integration_steps_params)

    def warmup(key, x0, num_steps):
        k0, k1 = jax.random.split(key)
        st = amd.init(position=x0, logdensity_fn=logdensity_fn, random_generator_arg=k0)
        st, par, n_tune = blackjax.adjusted_mclmc_find_L_and_step_size(
            mclmc_kernel=tune_kernel, logdensity_fn=logdensity_fn, num_steps=num_steps, state=st, rng_key=k1,
            target=target, frac_tune1=0.5, frac_tune2=0.5, frac_tune3=0.0, diagonal_preconditioning=True)
        return st, {"step_size": par.step_size, "inverse_mass_matrix": par.inverse_mass_matrix}, 2 * n_tune

    def combine(params):
        p = median_params(params)
        p["L"] = l_factor * p["step_size"] * pilot / 2.0
        return p

    def step(key, state, params):
        st, info = kernel(key, state, logdensity_fn, params["step_size"], L_proposal_factor=jnp.inf,
                          inverse_mass_matrix=params["inverse_mass_matrix"],
                          integration_steps_params=(params["L"] / params["step_size"],))
        bad = info.is_divergent | ~jnp.isfinite(st.logdensity)
        return st, StepInfo(2 * info.num_integration_steps.astype(jnp.int32), jnp.zeros_like(st.logdensity),
                            info.acceptance_rate, bad, st.logdensity)

    return Sampler("mams", warmup, combine, step, lambda s: s.position, adjusted=True)
