"""Latent parametrisations of the initial field (notes section b), and the Kaiser Wiener posterior.

All four variants are exact changes of variables of the same prior delta_L ~ GRF(P(k; theta)); only the
geometry the sampler sees changes. With P~ = P / V_cell the power in cell units and H the Hermitian
packing of :mod:`inference.fields`:

- ``direct``: z is real-space unit white noise, delta_L = ``jaxpm.linear_field(domain, cosmo, z)``.
- ``fourier`` (prior preconditioning): z ~ N(0, 1) per packed slot, delta_L(k) = sqrt(P~(k; theta)) H(z)(k).
- ``kaiser`` (static): z ~ N(0, s^2) with s = amp(S), S(k)^2 = 1 + nbar B_fid(k, mu)^2 P~_fid(k),
  B = D(a_obs) (1 + b1 + f(a_obs) mu^2) at the fiducial Omega_m, sigma8, b1; delta_L = sqrt(P~(theta))/S H(z).
- ``kaiser_dyn`` (dynamic): the same with S evaluated at the current (Omega_m, sigma8, b1); the prior of z
  then carries -sum log s(theta), which numpyro adds because z is sampled with scale s(theta).

At the fiducial point the Kaiser posterior of z (linear model, Gaussian noise 1/nbar per cell) is
N(m_z, I): Var[H(z) | d] / N_c = S^2 sigma_post^2 / P~ = S^2 / (1 + nbar B^2 P~) = 1.
"""

from __future__ import annotations

import jax.numpy as jnp

from . import fields

__all__ = ["PRECONDS", "kaiser_boost", "kaiser_scale", "wiener", "linear_from_latent", "latent_from_linear"]

PRECONDS = ("direct", "fourier", "kaiser", "kaiser_dyn")


def kaiser_boost(D, f, b1, mu2):
    """B(k, mu) = D (b_E + f mu^2), b_E = 1 + b1 (Lagrangian -> Eulerian linear bias)."""
    return D * (1.0 + b1 + f * mu2)


def kaiser_scale(nbar, boost, pk_cell):
    """S(k) = sqrt(1 + nbar |B|^2 P~): the prior-to-posterior standard-deviation ratio per mode
    (B may carry the half-cell phase of the painted mesh, see :func:`inference.fields.half_cell_shift`)."""
    return jnp.sqrt(1.0 + nbar * jnp.abs(boost) ** 2 * pk_cell)


def wiener(domain, obs, nbar, boost, pk_cell):
    """Kaiser Wiener posterior per rfft mode of delta_L: mean m(k) (rfft array) and variance in cell
    units sigma^2(k) (the rfft coefficient's variance is N_c sigma^2).

    Model d(k) = B delta_L(k) + n(k), d = rfftn(obs - 1), <|n|^2> = N_c / nbar, <|delta_L|^2> = N_c P~:
    sigma^2 = P~ / (1 + nbar |B|^2 P~), m = sigma^2 nbar conj(B) d (B complex: Kaiser boost times the
    half-cell phase between the lattice of delta_L and the cell-centred data mesh).
    """
    d = fields.rfftn(domain, obs - 1.0)
    var = pk_cell / (1.0 + nbar * jnp.abs(boost) ** 2 * pk_cell)
    return var * nbar * jnp.conj(boost) * d, var


def _safe_sqrt_ratio(pk_cell, scale):
    """sqrt(P~)/S with 0 at k = 0 (P~ = 0 there: the mean of delta_L is fixed to zero)."""
    return jnp.sqrt(jnp.where(pk_cell > 0, pk_cell, 0.0)) / scale


def linear_from_latent(domain, precond, z, pk_cell, scale_k, cosmo=None):
    """delta_L (particle grid, a = 1) from the latent z; ``scale_k`` is S(k) (1 for fourier)."""
    if precond == "direct":
        import jaxpm

        return jaxpm.linear_field(domain, cosmo, z)
    return fields.irfftn(domain, _safe_sqrt_ratio(pk_cell, scale_k) * fields.pack(domain, z))


def latent_from_linear(domain, precond, delta_k, pk_cell, scale_k):
    """Inverse map from an rfft array of delta_L to the latent z (the k = 0 slot set to 0)."""
    good = pk_cell > 0
    white_k = jnp.where(good, delta_k * scale_k / jnp.sqrt(jnp.where(good, pk_cell, 1.0)), 0.0)
    if precond == "direct":
        return fields.irfftn(domain, white_k)
    return fields.unpack(domain, white_k)
