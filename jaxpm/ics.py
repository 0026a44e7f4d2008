"""Initial conditions: white noise and the linear density field it maps to.

The map white noise -> linear field is a pure, differentiable function (:func:`linear_field`), so
inference can sample the noise itself. Noise for a seed is drawn with JAX's counter-based
(partitionable) threefry generator over the *global* particle grid, so the same seed gives the same
field whatever the device layout.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from . import fourier
from .cosmology import Cosmology
from .domain import Domain

__all__ = ["white_noise", "linear_field", "linear_field_from_seed"]


def white_noise(domain: Domain, seed) -> jax.Array:
    """Unit-variance Gaussian white noise on the particle grid, shape ``domain.particles``.

    ``seed`` is an int or a ``jax.random`` key.
    """
    key = jax.random.key(seed) if isinstance(seed, int) else seed
    # threefry is partitionable: each device draws its own block, identical to the single-device draw
    draw = lambda k: jax.random.normal(k, domain.particles, dtype=domain.real_dtype)
    if domain.distributed:
        return jax.jit(draw, out_shardings=domain.sharding("real"))(key)
    return draw(key)


def linear_field(domain: Domain, cosmo: Cosmology, noise: jax.Array) -> jax.Array:
    """Linear density contrast at a = 1 on the particle grid, coloured from white noise.

    ``delta_k = noise_k * sqrt(P(k) / V_cell)`` with ``V_cell = V / N_particles`` [(Mpc/h)^3], so that
    the field's power spectrum (numpy FFT convention, see :mod:`jaxpm.fourier`) is P(k) [(Mpc/h)^3]
    in expectation. The k = 0 mode is zero.
    """
    noise = jnp.asarray(noise, domain.real_dtype)
    kvec = fourier.kvectors(domain.particles, domain.box, domain.real_dtype, domain)
    k = fourier.kmodulus(kvec)
    is_zero = k == 0
    pk = cosmo.linear_power(jnp.where(is_zero, 1.0, k))
    v_cell = domain.volume / domain.n_particles
    amp = jnp.where(is_zero, 0.0, jnp.sqrt(pk / v_cell)).astype(domain.real_dtype)
    return fourier.irfftn(fourier.rfftn(noise, domain) * amp, domain.particles, domain)


def linear_field_from_seed(domain: Domain, cosmo: Cosmology, seed) -> jax.Array:
    """Convenience: :func:`linear_field` of :func:`white_noise` for ``seed``."""
    return linear_field(domain, cosmo, white_noise(domain, seed))
