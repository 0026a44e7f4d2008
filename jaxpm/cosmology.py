"""Cosmology: parameters, background expansion, linear growth and the linear power spectrum.

Conventions (stated once, used everywhere):

* Distances in Mpc/h, wavenumbers in h/Mpc, P(k) in (Mpc/h)^3, time as the scale factor ``a``.
* ``E(a) = H(a)/H0`` for a flat universe of matter and (w0, wa) dark energy; radiation is neglected.
* Growth factors are normalised so that ``D1(a=1) = 1``; ``D2`` is normalised with the same factor
  squared, so that in Einstein-de Sitter ``D1 = a`` and ``D2 = -3/7 a^2``.
* ``f1 = dln D1/dln a``, ``f2 = dln D2/dln a``.

The cosmology is an immutable pytree (an ``equinox.Module``): it can be passed through ``jax.jit``,
differentiated and vmapped. Growth tables are *computed* from it inside whatever function needs them
(:func:`growth_table`); nothing is cached on the object, so no tracer can leak between traces.
"""

from __future__ import annotations

import math
from typing import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .errors import ConfigError

__all__ = [
    "Cosmology",
    "LinearPower",
    "EisensteinHu",
    "TabulatedPower",
    "GrowthTable",
    "growth_table",
    "E",
    "Omega_m_a",
    "sigma_R",
]


# --------------------------------------------------------------------------------------------------
# Linear power-spectrum providers
# --------------------------------------------------------------------------------------------------


class LinearPower(eqx.Module):
    """Interface of a linear matter power-spectrum provider.

    A provider returns the *shape* of the linear power spectrum at ``a = 1``; :meth:`Cosmology.linear_power`
    normalises it to the cosmology's ``sigma8`` when :attr:`normalise_sigma8` is true. Subclasses implement
    :meth:`shape` (k in h/Mpc -> P in (Mpc/h)^3, arbitrary amplitude when normalised).
    """

    def shape(self, cosmo: "Cosmology", k: jax.Array) -> jax.Array:  # pragma: no cover - interface
        raise NotImplementedError

    @property
    def normalise_sigma8(self) -> bool:
        return True


def _jax_cosmo():
    # jax_cosmo 0.1.0 warns on import under Python 3.12 (pkg_resources deprecation, invalid escapes
    # in docstrings): noise for our users, not something they can act on.
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", SyntaxWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        import jax_cosmo

    return jax_cosmo


class EisensteinHu(LinearPower):
    """Eisenstein & Hu (1998) transfer function with baryon wiggles (from jax_cosmo), times k^n_s."""

    def shape(self, cosmo, k):
        jc = _jax_cosmo()

        # A fresh jax_cosmo object per call: its internal ``_workspace`` cache must never outlive a trace.
        jcos = jc.Cosmology(
            Omega_c=cosmo.Omega_m - cosmo.Omega_b,
            Omega_b=cosmo.Omega_b,
            h=cosmo.h,
            n_s=cosmo.n_s,
            sigma8=cosmo.sigma8,
            Omega_k=0.0,
            w0=cosmo.w0,
            wa=cosmo.wa,
        )
        t = jc.transfer.Eisenstein_Hu(jcos, k)
        return k**cosmo.n_s * t**2


class TabulatedPower(LinearPower):
    """A user table ``(k [h/Mpc], P [(Mpc/h)^3])`` at z = 0, as CAMB or CLASS write it.

    Interpolated linearly in log k - log P; outside the table P follows the end slopes in log-log.
    With ``rescale_to_sigma8=True`` (default) the table's shape is kept and its amplitude set by the
    cosmology's ``sigma8`` (so sigma8 stays a differentiable parameter); with ``False`` the table is used
    as is and ``sigma8`` is ignored.
    """

    log_k: jax.Array
    log_p: jax.Array
    rescale_to_sigma8: bool = eqx.field(static=True, default=True)

    def __init__(self, k, pk, rescale_to_sigma8: bool = True):
        k = np.asarray(k, dtype=np.float64).ravel()
        pk = np.asarray(pk, dtype=np.float64).ravel()
        if k.shape != pk.shape or k.size < 4:
            raise ConfigError("power table", f"{k.size} k and {pk.size} P values", "two equal-length columns of >= 4 rows")
        if np.any(k <= 0) or np.any(pk <= 0) or np.any(np.diff(k) <= 0):
            raise ConfigError("power table", "non-positive or unsorted values", "k > 0 strictly increasing and P > 0")
        self.log_k = jnp.asarray(np.log(k))
        self.log_p = jnp.asarray(np.log(pk))
        self.rescale_to_sigma8 = bool(rescale_to_sigma8)

    @classmethod
    def from_file(cls, path: str, rescale_to_sigma8: bool = True) -> "TabulatedPower":
        """Read a two-column text table (k [h/Mpc], P [(Mpc/h)^3]); '#' lines are comments."""
        try:
            data = np.loadtxt(path, comments="#")
        except (OSError, ValueError) as exc:
            raise ConfigError("power_table", path, f"a readable two-column text file ({exc})") from None
        if data.ndim != 2 or data.shape[1] < 2:
            raise ConfigError("power_table", path, "a text file with columns k [h/Mpc] and P [(Mpc/h)^3]")
        return cls(data[:, 0], data[:, 1], rescale_to_sigma8)

    @property
    def normalise_sigma8(self) -> bool:
        return self.rescale_to_sigma8

    def shape(self, cosmo, k):
        lk = jnp.log(k)
        lk_t, lp_t = self.log_k.astype(lk.dtype), self.log_p.astype(lk.dtype)
        inside = jnp.interp(lk, lk_t, lp_t)
        lo_slope = (lp_t[1] - lp_t[0]) / (lk_t[1] - lk_t[0])
        hi_slope = (lp_t[-1] - lp_t[-2]) / (lk_t[-1] - lk_t[-2])
        lp = jnp.where(lk < lk_t[0], lp_t[0] + lo_slope * (lk - lk_t[0]), inside)
        lp = jnp.where(lk > lk_t[-1], lp_t[-1] + hi_slope * (lk - lk_t[-1]), lp)
        return jnp.exp(lp)


def _tophat(x):
    # 3 j1(x)/x with a series near 0 (the closed form loses all digits there)
    small = x < 1e-3
    xs = jnp.where(small, 1.0, x)
    w = 3.0 * (jnp.sin(xs) - xs * jnp.cos(xs)) / xs**3
    return jnp.where(small, 1.0 - x**2 / 10.0, w)


def sigma_R(pk_fn: Callable[[jax.Array], jax.Array], R: float = 8.0, dtype=None) -> jax.Array:
    """RMS of the linear density in a top-hat sphere of radius ``R`` [Mpc/h].

    ``sigma^2(R) = 1/(2 pi^2) int dk k^2 P(k) W(kR)^2``, integrated by Simpson's rule in ln k over
    1e-5 < k < 1e2 h/Mpc with 4097 nodes (converged to < 1e-7 relative for CDM spectra).
    """
    dtype = dtype or jnp.result_type(float)
    lnk = jnp.linspace(math.log(1e-5), math.log(1e2), 4097, dtype=dtype)
    k = jnp.exp(lnk)
    integrand = k**3 * pk_fn(k) * _tophat(k * R) ** 2 / (2.0 * math.pi**2)
    h = lnk[1] - lnk[0]
    w = jnp.ones_like(lnk).at[1:-1:2].set(4.0).at[2:-1:2].set(2.0)
    return jnp.sqrt(h / 3.0 * jnp.sum(w * integrand))


# --------------------------------------------------------------------------------------------------
# Cosmology
# --------------------------------------------------------------------------------------------------

_PARAMS = ("Omega_m", "Omega_b", "h", "n_s", "sigma8", "w0", "wa")


class Cosmology(eqx.Module):
    """Flat w0-wa CDM cosmology; an immutable, differentiable pytree.

    Attributes:
        Omega_m: total matter density today (CDM + baryons).
        Omega_b: baryon density today.
        h: H0 / (100 km/s/Mpc).
        n_s: primordial spectral index.
        sigma8: RMS linear density in 8 Mpc/h spheres at a = 1.
        w0, wa: dark-energy equation of state w(a) = w0 + wa (1 - a).
        power: linear power provider (default Eisenstein-Hu).

    Defaults are Planck 2018 (TT,TE,EE+lowE+lensing+BAO, Table 2 of arXiv:1807.06209).
    """

    Omega_m: jax.Array | float = 0.3111
    Omega_b: jax.Array | float = 0.0490
    h: jax.Array | float = 0.6766
    n_s: jax.Array | float = 0.9665
    sigma8: jax.Array | float = 0.8102
    w0: jax.Array | float = -1.0
    wa: jax.Array | float = 0.0
    power: LinearPower = EisensteinHu()

    def __check_init__(self):
        # Only concrete values can be checked (under a trace the caller validated them already).
        vals = {}
        for name in _PARAMS:
            v = getattr(self, name)
            if isinstance(v, jax.core.Tracer):
                return
            vals[name] = float(np.asarray(v))
        check_parameters(**vals)

    @classmethod
    def planck18(cls, **overrides) -> "Cosmology":
        """Planck 2018 with optional overrides, e.g. ``Cosmology.planck18(sigma8=0.8)``."""
        return cls(**overrides)

    def replace(self, **changes) -> "Cosmology":
        """A copy with some parameters changed (the object itself is immutable)."""
        kw = {name: getattr(self, name) for name in _PARAMS + ("power",)}
        kw.update(changes)
        return Cosmology(**kw)

    def as_dict(self) -> dict:
        return {name: float(np.asarray(getattr(self, name))) for name in _PARAMS} | {
            "power": type(self.power).__name__
        }

    # -- linear power --------------------------------------------------------------------------
    def linear_power(self, k: jax.Array) -> jax.Array:
        """Linear matter power spectrum P(k) [(Mpc/h)^3] at a = 1, for k [h/Mpc] (any shape)."""
        k = jnp.asarray(k)
        dtype = k.dtype if jnp.issubdtype(k.dtype, jnp.floating) else jnp.result_type(float)
        k = k.astype(dtype)
        if not self.power.normalise_sigma8:
            return self.power.shape(self, k)
        shape_fn = lambda kk: self.power.shape(self, kk)
        norm = (jnp.asarray(self.sigma8, dtype) / sigma_R(shape_fn, 8.0, dtype)) ** 2
        return norm * shape_fn(k)


def check_parameters(Omega_m, Omega_b, h, n_s, sigma8, w0, wa) -> None:
    """Raise :class:`ConfigError` naming the first unphysical parameter."""
    rules = [
        ("Omega_m", Omega_m, 0.0 < Omega_m <= 1.0, "0 < Omega_m <= 1 (flat universe)"),
        ("Omega_b", Omega_b, 0.0 <= Omega_b < Omega_m, "0 <= Omega_b < Omega_m"),
        ("h", h, 0.0 < h < 2.0, "0 < h < 2"),
        ("n_s", n_s, 0.0 < n_s < 2.0, "0 < n_s < 2"),
        ("sigma8", sigma8, 0.0 < sigma8 < 5.0, "0 < sigma8 < 5"),
        ("w0 + wa", w0 + wa, w0 + wa < -1.0 / 3.0, "w0 + wa < -1/3 (dark energy negligible at early times)"),
    ]
    for name, value, ok, allowed in rules:
        if not (ok and math.isfinite(value)):
            raise ConfigError(name, value, allowed)


# --------------------------------------------------------------------------------------------------
# Background
# --------------------------------------------------------------------------------------------------


def _de_density(cosmo: Cosmology, a):
    """Dark-energy density in units of today's critical density, for w(a) = w0 + wa (1 - a)."""
    return (1.0 - cosmo.Omega_m) * a ** (-3.0 * (1.0 + cosmo.w0 + cosmo.wa)) * jnp.exp(-3.0 * cosmo.wa * (1.0 - a))


def E(cosmo: Cosmology, a) -> jax.Array:
    """Dimensionless Hubble rate H(a)/H0."""
    return jnp.sqrt(cosmo.Omega_m * a**-3 + _de_density(cosmo, a))


def Omega_m_a(cosmo: Cosmology, a) -> jax.Array:
    """Matter density parameter at scale factor a."""
    return cosmo.Omega_m * a**-3 / E(cosmo, a) ** 2


def dlnE_dlna(cosmo: Cosmology, a) -> jax.Array:
    w = cosmo.w0 + cosmo.wa * (1.0 - a)
    rho_m = cosmo.Omega_m * a**-3
    rho_de = _de_density(cosmo, a)
    return -1.5 * (rho_m + (1.0 + w) * rho_de) / (rho_m + rho_de)


# --------------------------------------------------------------------------------------------------
# Growth
# --------------------------------------------------------------------------------------------------

_A_MIN = 1e-5  # start of the growth integration; matter dominated for every allowed (w0, wa)
_N_TABLE = 256


class GrowthTable(eqx.Module):
    """Linear growth on a grid in ln a, with derivatives, for cubic-Hermite interpolation.

    ``y[:, i]`` holds (D1, dD1/dln a, D2, dD2/dln a) at ``ln_a[i]``, normalised to D1(1) = 1, and
    ``dy`` the derivatives of those with respect to ln a. Build it with :func:`growth_table`.
    """

    cosmo: Cosmology
    ln_a: jax.Array
    y: jax.Array
    dy: jax.Array

    def _interp(self, a):
        a = jnp.asarray(a, self.ln_a.dtype)
        x = jnp.log(a)
        h = self.ln_a[1] - self.ln_a[0]
        i = jnp.clip(jnp.floor((x - self.ln_a[0]) / h).astype(jnp.int32), 0, self.ln_a.shape[0] - 2)
        t = (x - self.ln_a[i]) / h
        h00 = (1 + 2 * t) * (1 - t) ** 2
        h10 = t * (1 - t) ** 2
        h01 = t**2 * (3 - 2 * t)
        h11 = t**2 * (t - 1)
        y0, y1 = self.y[:, i], self.y[:, i + 1]
        d0, d1 = self.dy[:, i], self.dy[:, i + 1]
        return h00 * y0 + h * h10 * d0 + h01 * y1 + h * h11 * d1

    def D1(self, a):
        """Linear growth factor, D1(1) = 1."""
        return self._interp(a)[0]

    def D2(self, a):
        """Second-order growth factor, = -3/7 a^2 in Einstein-de Sitter."""
        return self._interp(a)[2]

    def f1(self, a):
        """dln D1 / dln a."""
        v = self._interp(a)
        return v[1] / v[0]

    def f2(self, a):
        """dln D2 / dln a."""
        v = self._interp(a)
        return v[3] / v[2]

    def dD1_dlna(self, a):
        return self._interp(a)[1]

    def dD2_dlna(self, a):
        return self._interp(a)[3]

    def dD2_dD1(self, a):
        """dD2 / dD1 (= -6/7 D1 in Einstein-de Sitter): the 2LPT part of the growth-time velocity dx/dD1."""
        v = self._interp(a)
        return v[3] / v[1]

    def gp(self, a):
        """a^2 E(a) dD1/dln a = a^3 E dD1/da: momentum per unit 1LPT displacement (FastPM's G_p)."""
        return a**2 * E(self.cosmo, a) * self.dD1_dlna(a)

    def gf(self, a):
        """d gp / da = 1.5 Omega_m D1 / (a^2 E): the kick weight of the force (FastPM's G_f)."""
        return 1.5 * self.cosmo.Omega_m * self.D1(a) / (a**2 * E(self.cosmo, a))

    def gp2(self, a):
        """a^2 E(a) dD2/dln a: momentum per unit 2LPT displacement."""
        return a**2 * E(self.cosmo, a) * self.dD2_dlna(a)


def _growth_rhs(cosmo, lna, y):
    a = jnp.exp(lna)
    om = Omega_m_a(cosmo, a)
    fric = 2.0 + dlnE_dlna(cosmo, a)
    d1, d1p, d2, d2p = y[0], y[1], y[2], y[3]
    return jnp.stack([d1p, -fric * d1p + 1.5 * om * d1, d2p, -fric * d2p + 1.5 * om * (d2 - d1**2)])


def growth_table(cosmo: Cosmology, dtype=None) -> GrowthTable:
    """Solve the first- and second-order growth ODEs (in ln a) from a = 1e-5 to a = 1.

    ODEs, with ' = d/dln a:
        D1'' + (2 + dlnE/dln a) D1' = 1.5 Omega_m(a) D1
        D2'' + (2 + dlnE/dln a) D2' = 1.5 Omega_m(a) (D2 - D1^2)
    started on the matter-dominated growing modes D1 = a, D2 = -3/7 a^2; differentiable with
    respect to every cosmological parameter.

    Solved by classical RK4 on the 255 uniform ln a intervals of the table itself (h = 0.045; error
    below 1e-6 relative against the EdS solution, see tests). Why not diffrax's adaptive solver, which we
    use elsewhere: this solve runs inside every traced call that depends on the cosmology (each
    likelihood evaluation in inference), and diffrax's adaptive loop cost a constant 25-29 ms per call
    on an H200 (benchmarks/results/engine_nvidia-h200_2026-11-22.json), all launch overhead; a
    scan of 255 fused 4-vector RK4 steps compiles in under a second and runs in ~0.3 ms on CPU.
    """
    dtype = dtype or jnp.result_type(float)
    ln_a = jnp.linspace(math.log(_A_MIN), 0.0, _N_TABLE, dtype=dtype)
    h = ln_a[1] - ln_a[0]
    a0 = _A_MIN
    y0 = jnp.asarray([a0, a0, -3.0 / 7.0 * a0**2, -6.0 / 7.0 * a0**2], dtype=dtype)
    f = lambda t, y: _growth_rhs(cosmo, t, y)

    def rk4(y, t):
        k1 = f(t, y)
        k2 = f(t + h / 2, y + h / 2 * k1)
        k3 = f(t + h / 2, y + h / 2 * k2)
        k4 = f(t + h, y + h * k3)
        y = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        return y, y

    _, ys = jax.lax.scan(rk4, y0, ln_a[:-1], unroll=1)
    y = jnp.concatenate([y0[None], ys]).T  # (4, n)
    dy = jax.vmap(lambda t, yy: _growth_rhs(cosmo, t, yy), in_axes=(0, 1), out_axes=1)(ln_a, y)
    n1 = y[0, -1]
    scale = jnp.stack([1 / n1, 1 / n1, 1 / n1**2, 1 / n1**2])[:, None]
    return GrowthTable(cosmo=cosmo, ln_a=ln_a, y=y * scale, dy=dy * scale)
