"""Power spectra and friends: P(k), multipoles, cross-power, r(k), transfer function.

Convention: for a field on N_c cells in volume V, ``P(k) = V / N_c^2 <|delta_k|^2>`` [(Mpc/h)^3]
(numpy FFT convention, see :mod:`jaxpm.fourier`), averaged over all modes in a shell of |k|
[h/Mpc]. Each rfft mode is weighted by how many full-FFT modes it stands for (2, except the kz = 0
and kz = Nyquist planes), so results equal a full-FFT estimate exactly.

Binning: by default linear bins of width k_F = 2 pi / L from k_F/2 to the Nyquist frequency of the
mesh; ``k`` returned is the mode-weighted mean |k| of each bin (bins with no modes are dropped).
"""

from __future__ import annotations

import functools
import math
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import fourier
from .errors import ConfigError
from .painting import scheme_order

__all__ = ["PowerSpectrum", "default_k_edges", "power_spectrum", "rfft_modes", "domain_modes", "cross_power", "cross_correlation",
           "transfer_function", "shot_noise"]


class PowerSpectrum(NamedTuple):
    """Binned spectrum: ``k`` [h/Mpc], ``power`` [(Mpc/h)^3] (shape (n_ell, n_bins) for multipoles,
    else (n_bins,)), ``n_modes`` per bin (full-FFT count)."""

    k: np.ndarray | jax.Array
    power: np.ndarray | jax.Array
    n_modes: np.ndarray | jax.Array


def default_k_edges(shape, box) -> np.ndarray:
    kf = 2 * math.pi / max(box)
    knyq = min(math.pi * n / L for n, L in zip(shape, box))
    return np.arange(0.5 * kf, knyq + 1e-9 * kf, kf)


def shot_noise(box, n_particles: int) -> float:
    """Poisson shot noise V / N [(Mpc/h)^3] of ``n_particles`` equal-mass tracers (box: side or sides)."""
    return float(np.prod(np.broadcast_to(np.asarray(box, dtype=float), (3,)))) / n_particles


def _modes(shape, box, dtype):
    kvec = fourier.kvectors(shape, box, dtype)
    kmod = fourier.kmodulus(kvec)
    nz = shape[2]
    iz = jnp.arange(nz // 2 + 1)
    wz = jnp.where((iz == 0) | ((nz % 2 == 0) & (iz == nz // 2)), 1.0, 2.0).astype(dtype)
    weight = jnp.broadcast_to(wz.reshape(1, 1, -1), kmod.shape)
    return kvec, kmod, weight


def rfft_modes(field, box):
    """The default Fourier provider of the power spectra: ``(delta_k, kvec, weight)`` of one device.

    Any provider (e.g. a sharded FFT) returns the same three things, in any layout and sharding:
    ``delta_k`` (numpy FFT convention, unnormalised), ``kvec`` = (kx, ky, kz) [h/Mpc] where ``kvec[i]``
    is the wavenumber along axis i of ``field`` and broadcasts against ``delta_k`` (transposed
    layouts are fine), and ``weight``, the number of full-FFT modes each entry stands for (2 for
    the interior of an rfft half-space, 1 for a full FFT), broadcastable against ``delta_k``.
    """
    kvec, _, weight = _modes(field.shape, box, field.dtype)
    return fourier.rfftn(field), kvec, weight


@functools.lru_cache(maxsize=None)
def domain_modes(domain):
    """The Fourier provider of :func:`power_spectrum` for fields on ``domain``'s layout.

    On one device it is :func:`rfft_modes`; on several, the pencil r2c FFT of :mod:`jaxpm.pfft` with
    its padding planes given weight 0, so the estimate is computed where the field lives and only
    per-bin sums are reduced across devices. Cached per domain: the provider is a static argument
    of the jitted estimator, and the same object avoids recompiling.
    """
    if not domain.distributed:
        return rfft_modes

    def modes(field, box):
        shape = field.shape
        kvec = fourier.kvectors(shape, box, field.dtype, domain)
        nz = shape[2]
        iz = jnp.arange(domain.fourier_shape(shape)[2])
        wz = jnp.where((iz == 0) | ((nz % 2 == 0) & (iz == nz // 2)), 1.0, 2.0) * fourier.mode_mask(shape, domain)[0, 0]
        return fourier.rfftn(field, domain), kvec, wz.astype(field.dtype).reshape(1, 1, -1)

    return modes


def _bin(values, kmod, weight, edges, ells=None, mu=None):
    """Weighted shell averages of ``values`` (per Fourier mode) in bins ``edges``.

    Works on arrays of any shape and sharding without reshaping them: the bin index is computed
    element-wise, and each per-bin sum is a scatter-add into a small replicated vector, which
    XLA partitions into local sums plus an all-reduce (no gather of the field).
    """
    nb = len(edges) - 1
    shape = jnp.broadcast_shapes(values.shape, kmod.shape, jnp.shape(weight))
    kmod = jnp.broadcast_to(kmod, shape)
    idx = jnp.digitize(kmod, jnp.asarray(edges, kmod.dtype)) - 1
    valid = (idx >= 0) & (idx < nb)
    idx = jnp.where(valid, idx, nb)  # overflow bin, dropped
    w = jnp.broadcast_to(weight, shape) * valid

    def total(x):
        return jnp.zeros(nb + 1, x.dtype).at[idx].add(x)[:nb]

    counts = total(w.astype(kmod.dtype))
    ksum = total(w * kmod)
    if ells is None:
        psum = total(w * values)
    else:
        psum = jnp.stack([(2 * ell + 1) * total(w * values * _legendre(ell, mu)) for ell in ells])
    safe = jnp.where(counts > 0, counts, 1.0)
    return ksum / safe, psum / safe, counts


def _legendre(ell, mu):
    if ell == 0:
        return jnp.ones_like(mu)
    if ell == 2:
        return 0.5 * (3 * mu**2 - 1)
    if ell == 4:
        return (35 * mu**4 - 30 * mu**2 + 3) / 8
    raise ConfigError("multipoles", ell, "0, 2 or 4")


def power_spectrum(field, box, *, field2=None, k_edges=None, compensate: str | None = None,
                   shot_noise: float = 0.0, los: int | None = None, multipoles=(0, 2, 4),
                   drop_empty: bool = True, modes=None) -> PowerSpectrum:
    """Binned (cross-)power spectrum of real 3D fields in a periodic box [Mpc/h].

    Args:
        field: density contrast (or any real field) on a mesh.
        box: box side length(s) [Mpc/h].
        field2: second field for the cross-power Re<delta1 delta2*> (default: auto-power).
        k_edges: bin edges [h/Mpc] (default :func:`default_k_edges`).
        compensate: mass-assignment scheme ("ngp", "cic", "tsc") whose window to divide out.
        shot_noise: constant [(Mpc/h)^3] subtracted from the monopole (e.g. :func:`shot_noise`).
        los: line-of-sight axis (0, 1 or 2) for multipoles; None for the angle average.
        multipoles: the ells returned when ``los`` is given (0, 2, 4).
        drop_empty: remove bins without modes (needs concrete values; set False under jit).
        modes: Fourier provider ``modes(field, box) -> (delta_k, kvec, weight)`` (default
            :func:`rfft_modes`, one device). A sharded FFT here makes the whole estimate
            distributed: the binning reduces per-bin sums across devices and processes and never
            gathers the field (see :func:`rfft_modes` for what a provider returns).
    """
    field = jnp.asarray(field)
    box = tuple(float(b) for b in np.broadcast_to(np.asarray(box, dtype=float), (3,)))
    shape = field.shape
    if len(shape) != 3:
        raise ConfigError("field", f"array of shape {shape}", "a 3D mesh")
    if field2 is not None and jnp.shape(field2) != shape:
        raise ConfigError("field2", f"array of shape {jnp.shape(field2)}", f"the shape of field, {shape}")
    if los not in (None, 0, 1, 2):
        raise ConfigError("los", los, "0, 1, 2 or None")
    edges = default_k_edges(shape, box) if k_edges is None else np.asarray(k_edges, dtype=float)
    if field2 is not None:
        field2 = jnp.asarray(field2, field.dtype)
    k, p, counts = _power_core(field, field2, box, tuple(float(e) for e in edges), compensate, shot_noise,
                               los, tuple(multipoles) if los is not None else None, modes or rfft_modes)
    if drop_empty and not isinstance(counts, jax.core.Tracer):
        keep = np.asarray(counts) > 0
        return PowerSpectrum(np.asarray(k)[keep], np.asarray(p)[..., keep], np.asarray(counts)[keep])
    return PowerSpectrum(k, p, counts)


@partial(jax.jit, static_argnames=("box", "edges", "compensate", "los", "multipoles", "modes"))
def _power_core(field, field2, box, edges, compensate, shot_noise, los, multipoles, modes=rfft_modes):
    """The one implementation of the binned spectra; ``modes`` is the Fourier provider
    (:func:`rfft_modes` on one device, a sharded FFT for distributed fields)."""
    f1, kvec, weight = modes(field, box)
    f2 = f1 if field2 is None else modes(field2, box)[0]
    if compensate:
        cell = tuple(L / n for L, n in zip(box, field.shape))
        window = fourier.mass_assignment_window(kvec, cell, scheme_order(compensate))
        f1 = f1 / window
        f2 = f1 if field2 is None else f2 / window
    kmod = fourier.kmodulus(kvec)
    norm = math.prod(box) / math.prod(field.shape) ** 2
    values = (f1 * jnp.conj(f2)).real * norm
    if los is None:
        k, p, counts = _bin(values, kmod, weight, edges)
        return k, p - shot_noise, counts
    mu = kvec[los] / jnp.where(kmod > 0, kmod, 1.0)
    k, p, counts = _bin(values, kmod, weight, edges, multipoles, mu)
    if 0 in multipoles:
        p = p.at[multipoles.index(0)].add(-shot_noise)
    return k, p, counts


def cross_power(field1, field2, box, **kw) -> PowerSpectrum:
    """Cross-power spectrum Re<delta1 delta2*> [(Mpc/h)^3]; keywords as :func:`power_spectrum`."""
    return power_spectrum(field1, box, field2=field2, **kw)


def cross_correlation(field1, field2, box, **kw):
    """``(k, r(k))`` with ``r = P12 / sqrt(P11 P22)`` (1 for identical fields up to a factor)."""
    p12 = cross_power(field1, field2, box, **kw)
    p11 = power_spectrum(field1, box, **kw)
    p22 = power_spectrum(field2, box, **kw)
    return p12.k, p12.power / jnp.sqrt(p11.power * p22.power)


def transfer_function(field, reference, box, **kw):
    """``(k, T(k))`` with ``T = sqrt(P_field / P_reference)``."""
    p1 = power_spectrum(field, box, **kw)
    p2 = power_spectrum(reference, box, **kw)
    return p1.k, jnp.sqrt(p1.power / p2.power)
