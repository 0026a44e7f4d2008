"""Every FFT and k-grid of the inference package, in one place.

All transforms and k-grids go through the engine's sharding-aware ``jaxpm.fourier.rfftn/irfftn/kvectors``
with the model's :class:`~jaxpm.Domain`. On a distributed domain a real field (X, Y, Z) is split
P("x", "y") and its rfft (X, Y, Zc) P(None, "x", "y"), with Zc = Z/2 + 1 padded to a multiple of py by
zero planes (``domain.fourier_shape``). Per-mode multipliers may take any value on the padding planes
(the forward transform leaves zeros there and the inverse drops them); a *sum over modes* must weight
them 0: use :func:`mode_weights`.

Conventions are the engine's (README): forward rfftn unnormalised, inverse with 1/N_cells; a field
with power P(k) [(Mpc/h)^3] on N_c cells of volume V_cell has ``<|delta_k|^2> = N_c P / V_cell``.

Hermitian packing (the reference's ``rg2cgh``/``cgh2rg``, section (b) of the notes). A real array z of
the mesh shape holds one real degree of freedom per slot. For every full-FFT mode m with partner -m:

- self-conjugate (m = -m, 8 modes): ``H(z)[m] = sqrt(N_c) z[m]`` (a real mode);
- otherwise, with c the partner of smaller flat index (the "canonical" one of the pair):
  ``H(z)[c] = sqrt(N_c / 2) (z[c] + i z[-c])`` and ``H(z)[-c] = conj(H(z)[c])``.

So z ~ N(0, I) gives exactly the law of ``rfftn`` of unit white noise, each slot of z belongs to one
mode (its real or imaginary part), and a per-mode amplitude S(k) becomes a per-slot scale
``s = amp_layout(S)``. ``H`` and its inverse are gathers with static index tables (numpy, built once
per shape).

The packing is a global permutation (m and -m pair across the whole grid), so it exists on one device
only; :func:`pack`, :func:`unpack` and :func:`amp_layout` refuse a distributed domain. There the model
uses the "real" latent (:mod:`inference.precondition`), which needs only FFTs.
"""

from __future__ import annotations

import functools
import math

import jax.numpy as jnp
import numpy as np

from jaxpm import fourier
from jaxpm.domain import Domain
from jaxpm.errors import ConfigError

__all__ = ["rfftn", "irfftn", "kgrid", "mode_weights", "pack", "unpack", "amp_layout", "n_cells"]


def n_cells(domain: Domain) -> int:
    return math.prod(domain.particles)


def rfftn(domain: Domain, x):
    """Forward real FFT of a field on the particle grid (unnormalised)."""
    return fourier.rfftn(x, domain)


def irfftn(domain: Domain, xk):
    """Inverse of :func:`rfftn` (normalised by 1/N_cells)."""
    return fourier.irfftn(xk, domain.particles, domain)


def kgrid(domain: Domain, los: int | None):
    """``(kvec, k, mu2)`` on the rfft grid of the particle mesh (``domain.fourier_shape``): wavevector
    components [h/Mpc] (broadcastable; kz = 0 on padding planes), modulus |k| [h/Mpc] and
    mu^2 = (k_los / k)^2 (0 at k = 0; all 0 without a LOS). The full-size arrays are laid out like an
    rfft on a distributed domain, so each device computes its own block."""
    kvec = fourier.kvectors(domain.particles, domain.box, domain.real_dtype, domain)
    k = domain.constrain(jnp.broadcast_to(fourier.kmodulus(kvec), domain.fourier_shape(domain.particles)), "fourier")
    if los is None:
        mu2 = jnp.zeros_like(k)
    else:
        mu2 = jnp.where(k > 0, kvec[los] ** 2 / jnp.where(k > 0, k, 1.0) ** 2, 0.0)
    return kvec, k, mu2


def mode_weights(domain: Domain):
    """Number of full-FFT modes (equivalently, of real degrees of freedom of a real field) each rfft
    entry stands for, shape (1, 1, Zc): 1 on the kz = 0 and kz = Nyquist planes (their modes pair up
    within the plane), 2 elsewhere, 0 on the padding planes of a distributed domain. So
    ``sum(mode_weights * g(k))`` is the full-FFT sum of any g with g(k) = g(-k), and
    ``sum(mode_weights * |rfftn(x)|^2) / N_c = sum(x^2)`` (Parseval)."""
    nz = domain.particles[2]
    zp = domain.fourier_shape(domain.particles)[2]
    iz = jnp.arange(zp)
    w = jnp.where((iz == 0) | (iz == nz // 2), 1.0, 2.0) * (iz <= nz // 2)
    return w.astype(domain.real_dtype).reshape(1, 1, zp)


def _single_device(domain: Domain, what: str):
    if domain.distributed:
        raise ConfigError("latent", "modes", f"latent 'real' on a distributed domain ({what} is a global permutation "
                          "of the grid, one device only)")


@functools.lru_cache(maxsize=16)
def _tables(shape: tuple[int, int, int]):
    """Static index tables of the packing for a mesh ``shape`` (all even)."""
    nx, ny, nz = shape
    ix, iy, iz = np.meshgrid(np.arange(nx), np.arange(ny), np.arange(nz), indexing="ij")
    flat = (ix * ny + iy) * nz + iz
    neg = ((-ix) % nx * ny + (-iy) % ny) * nz + (-iz) % nz
    selfc = flat == neg
    canon = flat < neg
    n = nx * ny * nz
    # full mode m: real slot, imaginary slot, imaginary sign, weight
    re_slot = np.where(canon | selfc, flat, neg)
    im_slot = np.where(canon | selfc, neg, flat)
    im_sign = np.where(selfc, 0.0, np.where(canon, 1.0, -1.0))
    weight = np.where(selfc, math.sqrt(n), math.sqrt(n / 2))
    half = (slice(None), slice(None), slice(0, nz // 2 + 1))
    # unpack: z[m] from the rfft array; full mode m lies in the half or its partner does
    in_half = iz <= nz // 2
    src = np.where(in_half, (ix * ny + iy) * (nz // 2 + 1) + iz,
                   ((-ix) % nx * ny + (-iy) % ny) * (nz // 2 + 1) + (-iz) % nz)
    conj = ~in_half  # value at m is conj(c[-m])
    # z[m] = Re(c_full[m]) / w for canonical or self-conjugate m, -Im(c_full[m]) / w otherwise
    take_im = ~(canon | selfc)
    return dict(
        re=re_slot[half].ravel().astype(np.int32), im=im_slot[half].ravel().astype(np.int32),
        sign=im_sign[half], weight=weight[half],
        src=src.ravel().astype(np.int32), conj=conj, take_im=take_im, w_full=weight,
    )


def pack(domain: Domain, z):
    """H(z): real latent (particle-grid shape) -> Hermitian rfft array with the law of rfftn(white noise)."""
    _single_device(domain, "the Hermitian packing")
    t = _tables(domain.particles)
    zf = z.reshape(-1)
    dt = z.dtype
    re = zf[t["re"]].reshape(t["sign"].shape)
    im = zf[t["im"]].reshape(t["sign"].shape) * jnp.asarray(t["sign"], dt)
    return (re + 1j * im) * jnp.asarray(t["weight"], dt)


def unpack(domain: Domain, ck):
    """Inverse of :func:`pack`: the real latent z with ``pack(z) == ck`` (ck Hermitian)."""
    _single_device(domain, "the Hermitian packing")
    t = _tables(domain.particles)
    full = ck.reshape(-1)[t["src"]].reshape(domain.particles)
    full = jnp.where(t["conj"], jnp.conj(full), full)
    z = jnp.where(t["take_im"], -full.imag, full.real) / jnp.asarray(t["w_full"], full.real.dtype)
    return z.astype(domain.real_dtype)


def amp_layout(domain: Domain, s_k):
    """A per-mode amplitude on the rfft grid -> the per-slot scale of the latent (same amplitude on
    the real and imaginary slots of a mode; needs s(k) = s(-k), true of any function of |k| and mu^2)."""
    _single_device(domain, "the packed amplitude layout")
    t = _tables(domain.particles)
    s_k = jnp.broadcast_to(s_k, domain.particles[:2] + (domain.particles[2] // 2 + 1,))
    return s_k.reshape(-1)[t["src"]].reshape(domain.particles)


def compensate(domain: Domain, mesh, order: int):
    """Divide a painted mesh by the Fourier window of its mass assignment (order 1 NGP, 2 CIC, 3 TSC)."""
    kvec, _, _ = kgrid(domain, None)
    w = fourier.mass_assignment_window(kvec, domain.particle_spacing, order)
    return irfftn(domain, rfftn(domain, mesh) / w)


def kaiser_filter(domain: Domain, field, boost_k):
    """Apply a per-mode multiplier (e.g. the Kaiser boost D (b_E + f mu^2)) to a real field."""
    return irfftn(domain, boost_k * rfftn(domain, field))


def half_cell_shift(domain: Domain):
    """Per-mode factor from the particle lattice (q = i h, where delta_L lives) to the engine's cell-centred
    mesh (value j at (j + 1/2) h, where the galaxies are painted): F_mesh(k) = e^{i k.(h/2)(1,1,1)} F(k).

    On a Nyquist plane the shift has no Hermitian representation: a half-cell shifted Nyquist cosine is
    sampled at its zeros, so the factor there is cos(pi/2) = 0 along that axis.
    """
    kvec, _, _ = kgrid(domain, None)
    out = 1.0
    for k, h, n in zip(kvec, domain.particle_spacing, domain.particles):
        nyq = jnp.abs(jnp.abs(k * h) - math.pi) < 1e-6
        out = out * jnp.where(nyq, jnp.cos(k * h / 2), jnp.exp(0.5j * k * h))
    return out
