"""NUTS-within-Gibbs (the reference's NUTSwG): alternate a NUTS transition of the field block given
the scalars and one of the scalar block given the field, each with its own step size and diagonal mass
(window adaptation per block, scalars held at their starting values while the field adapts).

The flat position is ``[scalars (n_scalars), field]``. Every block transition re-initialises its NUTS
state on the conditional log-density (one extra gradient evaluation, counted).
"""

from __future__ import annotations

import blackjax
import jax
import jax.numpy as jnp

from . import Sampler, StepInfo, median_params


def make(logdensity_fn, opts: dict) -> Sampler:
    ns = int(opts.get("n_scalars", 6))
    target = float(opts.get("target_accept", 0.65))
    depth = int(opts.get("max_tree_depth", 10))

    def cond_field(scal):
        return lambda f: logdensity_fn(jnp.concatenate([scal, f]))

    def cond_scal(field):
        return lambda s: logdensity_fn(jnp.concatenate([s, field]))

    def adapt(key, ld, x0, n):
        wa = blackjax.window_adaptation(blackjax.nuts, ld, is_mass_matrix_diagonal=True, initial_step_size=0.1,
                                        target_acceptance_rate=target, max_num_doublings=depth)
        (st, par), info = wa.run(key, x0, num_steps=n)
        return st.position, dict(par), jnp.sum(info.info.num_integration_steps)

    def warmup(key, x0, num_steps):
        k1, k2 = jax.random.split(key)
        f, pf, n1 = adapt(k1, cond_field(x0[:ns]), x0[ns:], num_steps)
        s, ps, n2 = adapt(k2, cond_scal(f), x0[:ns], num_steps)
        x = jnp.concatenate([s, f])
        return x, {"field": pf, "scalars": ps}, n1 + n2

    def combine(params):
        return median_params(params)

    def block(key, ld, x, par):
        alg = blackjax.nuts(ld, step_size=par["step_size"], inverse_mass_matrix=par["inverse_mass_matrix"],
                            max_num_doublings=depth)
        st, info = alg.step(key, alg.init(x))
        return st, info

    def step(key, x, params):
        k1, k2 = jax.random.split(key)
        stf, inf = block(k1, cond_field(x[:ns]), x[ns:], params["field"])
        sts, ins = block(k2, cond_scal(stf.position), x[:ns], params["scalars"])
        x = jnp.concatenate([sts.position, stf.position])
        n = (inf.num_integration_steps + ins.num_integration_steps + 2).astype(jnp.int32)
        bad = inf.is_divergent | ins.is_divergent | ~jnp.isfinite(sts.logdensity)
        return x, StepInfo(n, jnp.zeros_like(sts.logdensity), 0.5 * (inf.acceptance_rate + ins.acceptance_rate),
                           bad, sts.logdensity)

    return Sampler("nutsgibbs", warmup, combine, step, lambda x: x, adjusted=True)
