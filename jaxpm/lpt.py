"""Lagrangian perturbation theory: 1LPT (Zel'dovich) and 2LPT displacements and momenta.

    x = q + D1(a) Psi1(q) + D2(a) Psi2(q)
    Psi1 = -grad phi1,  lap phi1 = delta_L (a = 1)
    Psi2 = +grad phi2,  lap phi2 = sum_{i<j} (phi1,ii phi1,jj - phi1,ij^2)

with D2 ~ -3/7 D1^2 (see :mod:`jaxpm.cosmology`). Momentum is the canonical p = a^2 dx/dt / H0
[Mpc/h], i.e. p = a^2 E(a) (f1 D1 Psi1 + f2 D2 Psi2); peculiar velocity v = 100 p / a [km/s].
Derivatives are spectral (exact) on the particle grid.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from . import fourier
from .cosmology import Cosmology, GrowthTable, growth_table
from .domain import Domain
from .errors import ConfigError

__all__ = ["lpt", "lpt_displacements"]


def lpt_displacements(domain: Domain, delta_lin: jax.Array, order: int = 2):
    """Psi1 (and Psi2 if order == 2), each of shape ``particles + (3,)`` [Mpc/h], for D1 = 1."""
    if order not in (1, 2):
        raise ConfigError("lpt_order", order, "1 or 2")
    shape, spacing = domain.particles, domain.particle_spacing
    kvec = fourier.kvectors(shape, domain.box, domain.real_dtype, domain)
    grads = [fourier.gradient_kernel(kvec, spacing, i, "exact") for i in range(3)]
    delta_k = fourier.rfftn(jnp.asarray(delta_lin, domain.real_dtype), domain)
    phi1_k = delta_k * fourier.inverse_laplace(kvec, spacing, "exact")
    psi1 = domain.constrain(jnp.stack([fourier.irfftn(-g * phi1_k, shape, domain) for g in grads], axis=-1))
    if order == 1:
        return psi1, None
    # Hessian of phi1; diagonal terms use -k_i^2 (Nyquist kept), off-diagonal the gradient kernels
    hess = {}
    for i in range(3):
        for j in range(i, 3):
            kern = -kvec[i] ** 2 if i == j else grads[i] * grads[j]
            hess[i, j] = fourier.irfftn(kern * phi1_k, shape, domain)
    source = (
        hess[0, 0] * hess[1, 1] + hess[0, 0] * hess[2, 2] + hess[1, 1] * hess[2, 2]
        - hess[0, 1] ** 2 - hess[0, 2] ** 2 - hess[1, 2] ** 2
    )
    phi2_k = fourier.rfftn(source, domain) * fourier.inverse_laplace(kvec, spacing, "exact")
    psi2 = domain.constrain(jnp.stack([fourier.irfftn(g * phi2_k, shape, domain) for g in grads], axis=-1))
    return psi1, psi2


def lpt(domain: Domain, cosmo: Cosmology, delta_lin: jax.Array, a, order: int = 2, growth: GrowthTable | None = None):
    """Displacement ``dx`` [Mpc/h] and momentum ``p`` [Mpc/h] of the particles at scale factor ``a``.

    Args:
        delta_lin: linear density contrast at a = 1 on the particle grid (:func:`jaxpm.ics.linear_field`).
        a: scale factor of the initial conditions.
        order: 1 (Zel'dovich) or 2.
        growth: a precomputed :func:`~jaxpm.cosmology.growth_table` (computed here if None).

    Returns:
        ``(dx, p)``, each of shape ``particles + (3,)``.
    """
    g = growth if growth is not None else growth_table(cosmo, domain.real_dtype)
    psi1, psi2 = lpt_displacements(domain, delta_lin, order)
    a = jnp.asarray(a, domain.real_dtype)
    dx = g.D1(a) * psi1
    p = g.gp(a) * psi1
    if psi2 is not None:
        dx = dx + g.D2(a) * psi2
        p = p + g.gp2(a) * psi2
    return dx.astype(domain.real_dtype), p.astype(domain.real_dtype)
