"""Initial conditions: the linear field has the input power spectrum."""

import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jaxpm import Cosmology, Domain, linear_field, white_noise
from jaxpm.errors import ConfigError
from jaxpm.observables import power_spectrum


def _expected_binned(domain, cosmo, edges):
    # mode-average of the input P(k) over each bin, computed with numpy on the full FFT grid
    ks = [2 * np.pi * np.fft.fftfreq(n, L / n) for n, L in zip(domain.particles, domain.box)]
    kk = np.sqrt(sum(np.meshgrid(*[k**2 for k in ks], indexing="ij"))).ravel()
    pk = np.zeros_like(kk)
    pk[kk > 0] = np.asarray(cosmo.linear_power(jnp.asarray(kk[kk > 0])))
    idx = np.digitize(kk, edges) - 1
    out, counts = [], []
    for b in range(len(edges) - 1):
        sel = idx == b
        counts.append(sel.sum())
        out.append(pk[sel].mean() if sel.any() else np.nan)
    return np.array(out), np.array(counts)


@pytest.mark.parametrize("seed", [0, 1])
def test_linear_field_power_spectrum_chi_square(seed):
    d = Domain.create(32, 200.0, dtype="float64")
    c = Cosmology()
    lin = linear_field(d, c, white_noise(d, seed))
    ps = power_spectrum(lin, d.box, drop_empty=False)
    edges = np.arange(0.5, 16.6, 1.0) * d.k_fundamental
    ps = power_spectrum(lin, d.box, k_edges=edges)
    expect, counts = _expected_binned(d, c, edges)
    assert np.array_equal(ps.n_modes, counts)
    # each complex mode pair counts once: variance of the bin mean = P^2 / (N/2)
    chi2 = np.sum((ps.power - expect) ** 2 / (expect**2 / (counts / 2)))
    dof = len(counts)
    assert stats.chi2.sf(chi2, dof) > 1e-3, (chi2, dof)


def test_white_noise_is_unit_gaussian_and_seeded():
    d = Domain.create(32, 100.0, dtype="float64")
    n1, n2 = white_noise(d, 5), white_noise(d, 5)
    assert np.array_equal(n1, n2)
    assert not np.allclose(n1, white_noise(d, 6))
    x = np.asarray(n1).ravel()
    assert abs(x.mean()) < 5 / np.sqrt(x.size) and abs(x.std() - 1) < 5 / np.sqrt(2 * x.size)
    assert stats.kstest(x, "norm").pvalue > 1e-3


def test_linear_field_is_linear_in_noise_and_scales_with_sigma8():
    d = Domain.create(16, 100.0, dtype="float64")
    w1, w2 = white_noise(d, 1), white_noise(d, 2)
    c = Cosmology()
    np.testing.assert_allclose(linear_field(d, c, w1 + 2 * w2), linear_field(d, c, w1) + 2 * linear_field(d, c, w2), atol=1e-12)
    np.testing.assert_allclose(linear_field(d, c.replace(sigma8=0.4), w1), 0.4 / c.sigma8 * linear_field(d, c, w1), rtol=1e-10)
    assert abs(float(jnp.mean(linear_field(d, c, w1)))) < 1e-12  # k = 0 mode removed


@pytest.mark.parametrize("n", [15, 0, -8, 2.5, (16, 16, 17)])
def test_particle_count_must_be_even_and_positive(n):
    with pytest.raises(ConfigError, match="particles"):
        Domain.create(n, 100.0)
