"""Lagrangian bias weights (Modi+2020 style, as the reference's flbench).

    w(q) = 1 + b1 d + b2 (d^2 - <d^2>) + bs2 (s^2 - <s^2>) + bn2 lap(d)

on the particle lattice, with d = D1(a_obs) delta_L the linear density at the observed time,
s^2 = s_ij s_ij, s_ij = (d_i d_j lap^{-1} - delta_ij / 3) d, and lap d -> -k^2 d(k) with k in h/Mpc
(so bn2 is in (Mpc/h)^2). b2 multiplies d^2 without the 1/2, like flbench (not the 2026 montecosmo).
Each weight is the number of galaxies a particle carries relative to the mean; the painted mesh has
mean 1 because <d> = 0 and every other term is mean-subtracted or a derivative.
"""

from __future__ import annotations

import jax.numpy as jnp

from . import fields

__all__ = ["bias_weights"]


def bias_weights(domain, delta, b1, b2, bs2, bn2):
    """Weights per particle (particle-grid shape) from the linear density ``delta`` at a_obs."""
    kvec, k, _ = fields.kgrid(domain, None)
    dk = fields.rfftn(domain, delta)
    k2 = k**2
    inv_k2 = jnp.where(k2 > 0, 1.0 / jnp.where(k2 > 0, k2, 1.0), 0.0)
    s2 = 0.0
    for i in range(3):
        for j in range(i, 3):
            kern = kvec[i] * kvec[j] * inv_k2 - (1.0 / 3.0 if i == j else 0.0)
            sij = fields.irfftn(domain, kern * dk)
            s2 = s2 + (1.0 if i == j else 2.0) * sij**2
    d2 = delta**2
    lap = fields.irfftn(domain, -k2 * dk)
    return 1.0 + b1 * delta + b2 * (d2 - d2.mean()) + bs2 * (s2 - s2.mean()) + bn2 * lap
