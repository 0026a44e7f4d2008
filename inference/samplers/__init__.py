"""Samplers behind one small interface (blackjax style), all on a flat position vector.

Each family module exposes ``make(logdensity_fn, opts) -> Sampler`` where, per chain,

- ``warmup(key, position, num_steps) -> (state, params, n_grads)``: tune from a starting position;
- ``combine(params) -> params``: merge the per-chain tuned parameters (stacked on axis 0) into one set
  shared by every chain (the reference: median over chains), and set what the tuner does not (MCLMC L);
- ``step(key, state, params) -> (state, StepInfo)``: one transition;
- ``position(state)``;
- ``calibrate(params, measured) -> (params, ok)`` (optional, unadjusted samplers): after ``combine``, the
  runner runs a few transitions with the shared parameters, measures the tuned quantity over all chains
  (MCLMC: the energy-error variance per dimension) and lets the sampler correct its step size until the
  measurement is in the target band (``ok``). None for samplers that need no such check.

``StepInfo.n_grads`` counts gradient evaluations of the log-density, as the reference counts them:
MCLMC 2 per step (isokinetic McLachlan), MAMS 2 per integration step, NUTS/HMC 1 per leapfrog step,
NUTS-within-Gibbs the leapfrog steps of both blocks plus one per block re-initialisation.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax.numpy as jnp


class StepInfo(NamedTuple):
    n_grads: jnp.ndarray          # gradient evaluations of this transition
    energy_sq: jnp.ndarray        # squared energy error (MCLMC; 0 for adjusted samplers)
    acceptance: jnp.ndarray       # acceptance probability (1 for MCLMC)
    divergent: jnp.ndarray        # bool: divergence or non-finite log-density
    logdensity: jnp.ndarray


class Sampler(NamedTuple):
    name: str
    warmup: Callable
    combine: Callable
    step: Callable
    position: Callable
    adjusted: bool
    calibrate: Callable | None = None


def median_params(params):
    """Median over chains (axis 0) of every leaf: step size and inverse mass matrix shared by all chains."""
    import jax

    return jax.tree.map(lambda x: jnp.median(x, axis=0), params)


def make_sampler(name: str, logdensity_fn, opts: dict) -> Sampler:
    from . import gibbs, hmc, mams, mclmc

    makers = {"mclmc": mclmc.make, "mams": mams.make, "nuts": hmc.make_nuts, "hmc": hmc.make_hmc,
              "nutsgibbs": gibbs.make}
    return makers[name](logdensity_fn, opts)


SAMPLERS = ("mclmc", "mams", "nuts", "hmc", "nutsgibbs")
