"""Scalar priors of the reference and their real-valued reparametrisation.

Reference (Simon-Onfroy+2025, notes section a): Omega_m ~ TruncNormal(0.3111, 0.5) on [0.05, 1],
sigma8 ~ TruncNormal(0.8102, 0.5) on [0, inf), b1 ~ N(1, 0.5), b2, bs2, bn2 ~ N(0, 2); each scalar is
sampled as a standardised variable y ~ (theta - loc_fid) / scale_fid.

How ours stays real-valued on numpyro >= 0.19 (whose constraint checks reject the reference's custom
truncated distribution): the sampled site y is a plain ``Normal``; the base value is a smooth bijection
of it that pushes that Normal *exactly* onto the truncated prior:

    x = x_fid + c y                       (x ~ N(0, 1) under the prior)
    t = F_trunc^{-1}(Phi(x))              (t ~ standard normal truncated to [t_lo, t_hi])
    theta = loc + scale t

with x_fid and c chosen so that theta = loc_fid + scale_fid y + O(y^2) near the fiducial point (so y has
the reference's scaling there). The prior density of y is its Normal density; no Jacobian term is
needed because the change of variables is the prior's own quantile map. Without truncation this is
exactly the reference's affine map: y ~ N((loc - loc_fid)/scale_fid, scale/scale_fid).
"""

from __future__ import annotations

import dataclasses
import math

import jax.numpy as jnp
import numpyro.distributions as dist
from jax.scipy.special import ndtr, ndtri
from scipy import stats

__all__ = ["ScalarPrior", "REFERENCE_PRIORS", "SCALARS", "GROUPS"]


@dataclasses.dataclass(frozen=True)
class ScalarPrior:
    """Normal(loc, scale) truncated to [low, high]; ``loc_fid``/``scale_fid`` set the reparametrisation."""

    name: str
    loc: float
    scale: float
    loc_fid: float
    scale_fid: float
    low: float = -math.inf
    high: float = math.inf

    @property
    def truncated(self) -> bool:
        return math.isfinite(self.low) or math.isfinite(self.high)

    def _consts(self):
        t_lo, t_hi = (self.low - self.loc) / self.scale, (self.high - self.loc) / self.scale
        if not self.truncated:
            return t_lo, t_hi, 1.0, 0.0, self.scale_fid / self.scale
        z = stats.norm.cdf(t_hi) - stats.norm.cdf(t_lo)
        t_fid = (self.loc_fid - self.loc) / self.scale
        x_fid = stats.norm.ppf((stats.norm.cdf(t_fid) - stats.norm.cdf(t_lo)) / z)
        dx_dt = stats.norm.pdf(t_fid) / (z * stats.norm.pdf(x_fid))
        return t_lo, t_hi, z, float(x_fid), float(dx_dt * self.scale_fid / self.scale)

    def latent(self) -> dist.Normal:
        """Prior of the sampled (standardised) site y."""
        _, _, _, x_fid, c = self._consts()
        if not self.truncated:
            return dist.Normal((self.loc - self.loc_fid) / self.scale_fid, self.scale / self.scale_fid)
        return dist.Normal(-x_fid / c, 1.0 / c)

    def to_base(self, y):
        """theta(y), smooth and strictly increasing, in [low, high]."""
        if not self.truncated:
            return self.loc_fid + self.scale_fid * y
        t_lo, t_hi, z, x_fid, c = self._consts()
        x = x_fid + c * y
        dt = jnp.result_type(y, float)
        eps = float(jnp.finfo(dt).eps)
        tiny = float(jnp.finfo(dt).tiny)
        # two algebraically equal forms, each accurate in one tail (x < 0 / x > 0)
        lo_arg = jnp.clip(float(stats.norm.cdf(t_lo)) + z * ndtr(x), tiny, 1 - eps)
        hi_arg = jnp.clip(float(stats.norm.cdf(-t_hi)) + z * ndtr(-x), tiny, 1 - eps)
        t = jnp.where(x < 0, ndtri(lo_arg), -ndtri(hi_arg))
        return self.loc + self.scale * t

    def to_latent(self, theta) -> float:
        """y(theta) (numpy; for initialisation at the truth or fiducial values)."""
        if not self.truncated:
            return (theta - self.loc_fid) / self.scale_fid
        t_lo, t_hi, z, x_fid, c = self._consts()
        t = (theta - self.loc) / self.scale
        x = stats.norm.ppf((stats.norm.cdf(t) - stats.norm.cdf(t_lo)) / z)
        return float((x - x_fid) / c)

    def base_prior(self):
        """The prior on theta itself (scipy frozen distribution), for tests and plots."""
        t_lo, t_hi = (self.low - self.loc) / self.scale, (self.high - self.loc) / self.scale
        return stats.truncnorm(t_lo, t_hi, loc=self.loc, scale=self.scale)


REFERENCE_PRIORS = (
    ScalarPrior("Omega_m", 0.3111, 0.5, 0.3111, 0.02, 0.05, 1.0),
    ScalarPrior("sigma8", 0.8102, 0.5, 0.8102, 0.02, 0.0, math.inf),
    ScalarPrior("b1", 1.0, 0.5, 1.0, 0.04),
    ScalarPrior("b2", 0.0, 2.0, 0.0, 0.02),
    ScalarPrior("bs2", 0.0, 2.0, 0.0, 0.08),
    ScalarPrior("bn2", 0.0, 2.0, 0.0, 0.2),
)
SCALARS = tuple(p.name for p in REFERENCE_PRIORS)
GROUPS = {"cosmo": ("Omega_m", "sigma8"), "bias": ("b1", "b2", "bs2", "bn2")}
