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

Two layouts of the latent (``latent``), for fourier, kaiser and kaiser_dyn (direct has only one):

- ``"modes"``: z is the packed Fourier-slot array above (one device only: H is a global permutation).
- ``"real"``: z is a real field on the particle grid, related to the packed one by the orthogonal map
  z_real = R z_modes, R z = F^-1 H(z) (F = rfftn; R is orthogonal because H is an isometry onto the
  Hermitian arrays, sum_full |H(z)|^2 = N_c |z|^2, and so is F / sqrt(N_c) by Parseval). Then

      delta_L = F^-1 [ sqrt(P~)/S * F z ],        z = F^-1 S F w,  w ~ N(0, I) real white noise,

  so z ~ N(0, C) with C = F^-1 S^2 F, and log p(z) = log N(w; 0, I) - log det(F^-1 S F) with
  w = F^-1 S^-1 F z. In the basis R of real Fourier degrees of freedom F^-1 S F is diag(amp(S)), so
  log det = sum over full-FFT modes m of log S(m) = sum_rfft mode_weights * log S (weight 1 on the kz = 0
  and Nyquist planes, 2 elsewhere, 0 on padding; the 8 self-conjugate modes are real single degrees of
  freedom and lie on those planes with weight 1), and |w|^2 = sum_rfft mode_weights |F z / S|^2 / N_c
  (Parseval). Both are local sums on the rfft grid plus one scalar reduction; see :class:`ColouredNormal`.
  Because R is orthogonal and maps w_modes = z_modes / s to w, log p(z_real = R z_modes) equals the
  "modes" log p(z_modes) exactly (same constants, same Jacobian), and the posterior of z_real at the
  fiducial point is again N(R m_z, I). z ~ N(0, I) with S = 1 gives delta_L with power P.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpyro.distributions as dist
from numpyro.distributions import constraints

from . import fields

__all__ = ["PRECONDS", "LATENTS", "kaiser_boost", "kaiser_scale", "wiener", "linear_from_latent", "latent_from_linear",
           "ColouredNormal", "FieldIndependent", "field_event", "latent_prior", "white_to_latent"]

PRECONDS = ("direct", "fourier", "kaiser", "kaiser_dyn")
LATENTS = ("modes", "real")


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


def linear_from_latent(domain, precond, z, pk_cell, scale_k, cosmo=None, latent="modes"):
    """delta_L (particle grid, a = 1) from the latent z; ``scale_k`` is S(k) (1 for fourier)."""
    if precond == "direct":
        import jaxpm

        return jaxpm.linear_field(domain, cosmo, z)
    zk = fields.pack(domain, z) if latent == "modes" else fields.rfftn(domain, z)
    return fields.irfftn(domain, _safe_sqrt_ratio(pk_cell, scale_k) * zk)


def latent_from_linear(domain, precond, delta_k, pk_cell, scale_k, latent="modes"):
    """Inverse map from an rfft array of delta_L to the latent z (the k = 0 mode set to 0)."""
    good = pk_cell > 0
    white_k = jnp.where(good, delta_k * scale_k / jnp.sqrt(jnp.where(good, pk_cell, 1.0)), 0.0)
    if precond == "direct" or latent == "real":
        return fields.irfftn(domain, white_k)
    return fields.unpack(domain, white_k)


def white_to_latent(domain, w, scale_k, latent="modes"):
    """A latent with the prior's law from unit white noise ``w`` (each layout's own): "modes" s * w,
    "real" F^-1 S F w."""
    if latent == "modes":
        return fields.amp_layout(domain, scale_k) * w
    return fields.irfftn(domain, scale_k * fields.rfftn(domain, w))


class ColouredNormal(dist.Distribution):
    """Law of z = F^-1 S F w, w ~ N(0, I) on the particle grid (the "real" latent of a Kaiser
    parametrisation); S(k) > 0 a real per-mode amplitude on the rfft grid with S(k) = S(-k).

    log p(z) = -|F^-1 S^-1 F z|^2 / 2 - sum_full log S - (N_c / 2) log(2 pi), with both sums taken on the
    rfft grid with :func:`inference.fields.mode_weights` (module docstring). Works on a sharded field.
    """

    arg_constraints = {}
    support = constraints.independent(constraints.real, 3)
    reparametrized_params = []

    def __init__(self, domain, scale_k, validate_args=None):
        self.domain = domain
        self.scale_k = scale_k
        super().__init__(batch_shape=(), event_shape=tuple(domain.particles), validate_args=validate_args)

    def log_det(self):
        """log det(F^-1 S F) = sum over full-FFT modes of log S(k)."""
        w = fields.mode_weights(self.domain)
        return jnp.sum(w * jnp.log(self.scale_k))

    def log_prob(self, value):
        d = self.domain
        wk = fields.rfftn(d, value) / self.scale_k
        sq = jnp.sum(fields.mode_weights(d) * (wk.real**2 + wk.imag**2)) / fields.n_cells(d)
        return -0.5 * sq - self.log_det() - 0.5 * fields.n_cells(d) * math.log(2 * math.pi)

    def sample(self, key, sample_shape=()):
        d = self.domain
        draw = lambda k: white_to_latent(d, d.constrain(jax.random.normal(k, d.particles, d.real_dtype)),  # noqa: E731
                                         self.scale_k, "real")
        if not sample_shape:
            return draw(key)
        n = math.prod(sample_shape)
        return jax.vmap(draw)(jax.random.split(key, n)).reshape(tuple(sample_shape) + d.particles)


class FieldIndependent(dist.Independent):
    """``base.to_event(3)`` whose log_prob sums over the three field axes directly: numpyro's own
    ``sum_rightmost`` reshapes to one axis first, which on a sharded (X, Y, Z) field is an all-gather."""

    def log_prob(self, value):
        return jnp.sum(self.base_dist.log_prob(value), axis=(-3, -2, -1))


def field_event(domain, base):
    """``base.to_event(3)`` on one device (unchanged), :class:`FieldIndependent` on a distributed domain."""
    return FieldIndependent(base, 3) if domain.distributed else base.to_event(3)


def latent_prior(domain, precond, scale_k, latent="modes"):
    """numpyro distribution of the latent field (the ``init_mesh_`` site), event shape ``domain.particles``."""
    zeros = jnp.zeros(domain.particles, domain.real_dtype)
    if precond in ("direct", "fourier"):
        return field_event(domain, dist.Normal(domain.constrain(zeros), 1.0))
    if latent == "modes":
        return dist.Normal(zeros, fields.amp_layout(domain, scale_k)).to_event(3)
    return ColouredNormal(domain, scale_k)
