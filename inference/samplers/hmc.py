"""NUTS and HMC (blackjax 1.7.1) with Stan-style window adaptation of step size and diagonal mass.

Target acceptance 0.65 by default (the reference's numpyro setting; blackjax's default is 0.8).
Gradient evaluations per transition = leapfrog steps (``num_integration_steps``).
HMC jitters its step size by +-20 % per transition (``step_jitter``), NUTS does not.
"""

from __future__ import annotations

import blackjax
import jax
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
        if not bool(opts.get("adapt_mass", True)):
            return _warmup_identity_mass(key, x0, num_steps)
        wa = blackjax.window_adaptation(family, logdensity_fn, is_mass_matrix_diagonal=True,
                                        initial_step_size=float(opts.get("initial_step_size", 0.1)),
                                        target_acceptance_rate=target, **extra)
        (st, par), info = wa.run(key, x0, num_steps=num_steps)
        return st, dict(par), jnp.sum(info.info.num_integration_steps)

    def _warmup_identity_mass(key, x0, num_steps):
        # step size by dual averaging only, unit mass: isolates the geometry of the parametrisation
        init_da, update_da, final_da = blackjax.adaptation.step_size.dual_averaging_adaptation(target)
        st = family(logdensity_fn, step_size=1.0, inverse_mass_matrix=jnp.ones_like(x0), **extra).init(x0)
        da = init_da(float(opts.get("initial_step_size", 0.1)))

        def body(carry, k):
            st, da, n = carry
            alg = family(logdensity_fn, step_size=jnp.exp(da.log_step_size), inverse_mass_matrix=jnp.ones_like(x0), **extra)
            st, info = alg.step(k, st)
            return (st, update_da(da, info.acceptance_rate), n + info.num_integration_steps), None

        (st, da, n), _ = jax.lax.scan(body, (st, da, 0), jax.random.split(key, num_steps))
        return st, {"step_size": final_da(da), "inverse_mass_matrix": jnp.ones_like(x0)}, n

    def combine(params):
        return median_params(params)

    jitter = float(opts.get("step_jitter", 0.2 if kind == "hmc" else 0.0))

    def step(key, state, params):
        eps = params["step_size"]
        if jitter:
            # HMC's fixed number of leapfrog steps: a fixed trajectory length resonates with a near-Gaussian
            # posterior's (mass-adapted, hence similar) frequencies, and some directions then barely move
            # (ESS 3 of 2000 draws on a 12-d Gaussian); a step size drawn uniformly in eps (1 +- jitter) per
            # transition breaks that, as Stan's stepsize_jitter does
            key, kj = jax.random.split(key)
            eps = eps * jax.random.uniform(kj, (), minval=1 - jitter, maxval=1 + jitter)
        alg = family(logdensity_fn, step_size=eps, inverse_mass_matrix=params["inverse_mass_matrix"], **extra)
        st, info = alg.step(key, state)
        bad = info.is_divergent | ~jnp.isfinite(st.logdensity)
        # HMC's info carries its fixed step count as a Python int, NUTS's a traced array
        return st, StepInfo(jnp.asarray(info.num_integration_steps, jnp.int32), jnp.zeros_like(st.logdensity),
                            info.acceptance_rate, bad, st.logdensity)

    return Sampler(kind, warmup, combine, step, lambda s: s.position, adjusted=True)


def make_nuts(logdensity_fn, opts):
    return _make("nuts", logdensity_fn, opts)


def make_hmc(logdensity_fn, opts):
    return _make("hmc", logdensity_fn, opts)
