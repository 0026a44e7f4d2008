"""NUTS and HMC (blackjax 1.7.1) with Stan-style window adaptation of step size and diagonal mass.

Target acceptance 0.65 by default (the reference's numpyro setting; blackjax's default is 0.8).
Gradient evaluations per transition = leapfrog steps (``num_integration_steps``).
"""

from __future__ import annotations

import blackjax
import jax.numpy as jnp

from . import Sampler, StepInfo, median_params


def _make(kind, logdensity_fn, opts):
    target = float(opts.get("target_accept", 0.65))
    extra = {}
    if kind == "nuts":
        extra["max_num_doublings"] = int(opts.get("max_tree_depth", 10))
        family = blackjax.nuts
    else:
        extra["num_integration_steps"] = int(opts.get("hmc_steps", 32))
        family = blackjax.hmc

    def warmup(key, x0, num_steps):
        wa = blackjax.window_adaptation(family, logdensity_fn, is_mass_matrix_diagonal=True,
                                        initial_step_size=float(opts.get("initial_step_size", 0.1)),
                                        target_acceptance_rate=target, **extra)
        (st, par), info = wa.run(key, x0, num_steps=num_steps)
        return st, dict(par), jnp.sum(info.info.num_integration_steps)

    def combine(params):
        return median_params(params)

    def step(key, state, params):
        alg = family(logdensity_fn, step_size=params["step_size"],
                     inverse_mass_matrix=params["inverse_mass_matrix"], **extra)
        st, info = alg.step(key, state)
        bad = info.is_divergent | ~jnp.isfinite(st.logdensity)
        return st, StepInfo(info.num_integration_steps.astype(jnp.int32), jnp.zeros_like(st.logdensity),
                            info.acceptance_rate, bad, st.logdensity)

    return Sampler(kind, warmup, combine, step, lambda s: s.position, adjusted=True)


def make_nuts(logdensity_fn, opts):
    return _make("nuts", logdensity_fn, opts)


def make_hmc(logdensity_fn, opts):
    return _make("hmc", logdensity_fn, opts)
