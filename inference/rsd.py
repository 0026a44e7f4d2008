"""Flat-sky redshift-space distortions along one box axis.

The shift of a galaxy along the line of sight is s = v_los / (a H) in comoving Mpc/h. With the
engine's canonical momentum p = a^2 dx/dt / H0 [Mpc/h] and peculiar velocity v = a dx/dt:
s = a dx/dt / (a H) = H0 p / (a^2 H) = p / (a^2 E(a)). For 1LPT, p = a^2 E f D1 Psi, hence
s = f D1 Psi_los (tested).
"""

from __future__ import annotations

from jaxpm.cosmology import E

__all__ = ["rsd_shift", "apply_rsd"]


def rsd_shift(cosmo, p, a, los: int):
    """Line-of-sight shift [Mpc/h] per particle from momenta ``p`` [Mpc/h] at scale factor ``a``."""
    return p[..., los] / (a**2 * E(cosmo, a))


def apply_rsd(cosmo, dx, p, a, los: int | None):
    """Displacements [Mpc/h] in redshift space (unchanged when ``los`` is None)."""
    if los is None:
        return dx
    return dx.at[..., los].add(rsd_shift(cosmo, p, a, los))
