"""jaxpm.observables against independent numpy references and analytic expectations.

References used here never call jaxpm: a brute-force full complex FFT (np.fft.fftn) with our own
binning, analytic plane-wave amplitudes, the exact Poisson shot noise of NGP / CIC painting (Jing 2005
aliasing sums), and the Kaiser multipole ratios.

Power-spectrum convention under test (jaxpm.fourier): P(k) = V / N_c^2 <|delta_k|^2>, numpy FFT.
"""

import math

import jax
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)  # also done by conftest; float64 isolates the algorithm

from jaxpm.errors import ConfigError  # noqa: E402
from jaxpm.observables import (  # noqa: E402
    cross_correlation,
    cross_power,
    default_k_edges,
    power_spectrum,
    shot_noise,
    transfer_function,
)

ORDER = {"ngp": 1, "cic": 2, "tsc": 3}


# ------------------------------------------------------------------------------------------------
# independent numpy reference
# ------------------------------------------------------------------------------------------------


def full_k(shape, box):
    """Full-FFT wavevector components (broadcastable) and |k| [h/Mpc]."""
    ks = []
    for axis, (n, L) in enumerate(zip(shape, box)):
        k = 2 * np.pi * np.fft.fftfreq(n, d=L / n)
        s = [1, 1, 1]
        s[axis] = n
        ks.append(k.reshape(s))
    kmod = np.sqrt(ks[0] ** 2 + ks[1] ** 2 + ks[2] ** 2)
    return ks, kmod


def legendre(ell, mu):
    return {0: np.ones_like(mu), 2: 0.5 * (3 * mu**2 - 1), 4: (35 * mu**4 - 30 * mu**2 + 3) / 8}[ell]


def np_power(f1, box, edges, f2=None, compensate=None, los=None, ells=(0, 2, 4)):
    """Brute-force binned (cross-)power: full complex FFT, every mode counted once.

    Returns k (mode-mean |k|), P (or (len(ells), nb) multipoles) and mode counts, all bins kept.
    """
    shape = f1.shape
    box = np.broadcast_to(np.asarray(box, float), (3,))
    F1 = np.fft.fftn(f1)
    F2 = F1 if f2 is None else np.fft.fftn(f2)
    ks, kmod = full_k(shape, box)
    if compensate:
        w = np.ones(shape)
        for k, n, L in zip(ks, shape, box):
            w = w * np.sinc(k * (L / n) / (2 * np.pi)) ** ORDER[compensate]  # np.sinc(x) = sin(pi x)/(pi x)
        F1, F2 = F1 / w, F2 / w
    pk = np.prod(box) / np.prod(shape) ** 2 * (F1 * np.conj(F2)).real
    nb = len(edges) - 1
    idx = np.digitize(kmod.ravel(), edges) - 1
    ok = (idx >= 0) & (idx < nb)
    idx = idx[ok]
    counts = np.bincount(idx, minlength=nb).astype(float)
    safe = np.where(counts > 0, counts, 1)
    kmean = np.bincount(idx, kmod.ravel()[ok], minlength=nb) / safe
    if los is None:
        return kmean, np.bincount(idx, pk.ravel()[ok], minlength=nb) / safe, counts
    mu = (ks[los] / np.where(kmod > 0, kmod, 1)).ravel()[ok]
    mu = np.broadcast_to(mu, idx.shape)
    pls = [(2 * ell + 1) * np.bincount(idx, pk.ravel()[ok] * legendre(ell, mu), minlength=nb) / safe for ell in ells]
    return kmean, np.array(pls), counts


def kept(ref_k, ref_p, counts):
    m = counts > 0
    return ref_k[m], ref_p[..., m], counts[m]


# ------------------------------------------------------------------------------------------------
# binning
# ------------------------------------------------------------------------------------------------


def test_default_k_edges_are_fundamental_shells_up_to_nyquist():
    L, n = 100.0, 32
    kf = 2 * np.pi / L
    edges = default_k_edges((n, n, n), (L, L, L))
    np.testing.assert_allclose(edges, (np.arange(n // 2) + 0.5) * kf, rtol=1e-12)
    assert edges[-1] <= np.pi * n / L
    # non-cubic: fundamental of the longest side, Nyquist of the coarsest axis (pi * 12 / 60)
    edges = default_k_edges((16, 12, 20), (48.0, 60.0, 70.0))
    kf = 2 * np.pi / 70.0
    np.testing.assert_allclose(np.diff(edges), kf, rtol=1e-10)
    assert edges[0] == pytest.approx(0.5 * kf)
    assert edges[-1] <= np.pi * 12 / 60.0 < edges[-1] + kf


# ------------------------------------------------------------------------------------------------
# plane waves: all power in one bin with the analytic amplitude
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("nvec", [(3, 1, 2), (3, 1, 0), (0, 0, 5), (2, -3, 7), (1, 0, 16)])
def test_plane_wave_power_in_single_bin(nvec):
    n, L, A = 32, 100.0, 0.37
    kf = 2 * np.pi / L
    k0 = kf * np.asarray(nvec, float)
    x = (np.arange(n) + 0.5) * L / n
    X, Y, Z = np.meshgrid(x, x, x, indexing="ij")
    delta = A * np.cos(k0[0] * X + k0[1] * Y + k0[2] * Z + 0.3)
    edges = (np.arange(0, 30) + 0.5) * kf  # reaches past the Nyquist plane of the (1, 0, 16) case
    ps = power_spectrum(delta, L, k_edges=edges)

    # count the modes of the target shell ourselves (full FFT, every mode once)
    _, kmod = full_k((n,) * 3, (L,) * 3)
    k0mod = np.linalg.norm(k0)
    target = np.digitize(k0mod, edges) - 1
    in_bin = (kmod >= edges[target]) & (kmod < edges[target + 1])
    M = in_bin.sum()
    # delta_k = A N_c / 2 at +k0 and at -k0, so each of those two modes has P = V A^2 / 4
    expected = 2 * (L**3 * A**2 / 4) / M

    k = np.asarray(ps.k)
    p = np.asarray(ps.power)
    i = np.argmin(np.abs(k - kmod[in_bin].mean()))
    assert k[i] == pytest.approx(kmod[in_bin].mean(), rel=1e-12)
    assert ps.n_modes[i] == M
    assert p[i] == pytest.approx(expected, rel=1e-10)
    others = np.delete(p, i)
    assert np.max(np.abs(others)) < 1e-10 * expected
    # the total power sum_bins P * n_modes equals the variance budget V <delta^2> = V A^2 / 2
    assert np.sum(p * np.asarray(ps.n_modes)) == pytest.approx(L**3 * A**2 / 2, rel=1e-10)


def test_plane_wave_on_nyquist_plane_is_self_conjugate():
    # cos(pi j) along z: one self-conjugate mode holding delta_k = A N_c, so P = V A^2 in that mode
    n, L, A = 16, 50.0, 0.5
    kf = 2 * np.pi / L
    j = np.arange(n)
    delta = np.broadcast_to(A * np.cos(np.pi * j), (n, n, n)).copy()
    edges = (np.arange(0, 12) + 0.5) * kf
    ps = power_spectrum(delta, L, k_edges=edges)
    _, kmod = full_k((n,) * 3, (L,) * 3)
    M = ((kmod >= edges[7]) & (kmod < edges[8])).sum()  # shell [7.5, 8.5) kF holding |k| = 8 kF
    i = int(np.argmin(np.abs(ps.k - 8 * kf)))
    assert ps.power[i] == pytest.approx(L**3 * A**2 / M, rel=1e-10)
    assert np.max(np.abs(np.delete(ps.power, i))) < 1e-10 * L**3 * A**2 / M


# ------------------------------------------------------------------------------------------------
# brute force full-FFT comparison (cubic and non-cubic, odd sizes, compensation, cross, multipoles)
# ------------------------------------------------------------------------------------------------

SHAPES = [((16, 16, 16), (64.0, 64.0, 64.0)), ((16, 12, 20), (48.0, 30.0, 70.0)), ((15, 12, 21), (45.0, 36.0, 63.0))]


@pytest.mark.parametrize("shape,box", SHAPES)
@pytest.mark.parametrize("compensate", [None, "ngp", "cic", "tsc"])
def test_power_matches_bruteforce_fft(shape, box, compensate):
    rng = np.random.default_rng(1)
    field = rng.normal(size=shape) + 0.3 * rng.normal(size=shape) ** 2
    for edges in (default_k_edges(shape, box), np.geomspace(0.05, 1.2, 9)):
        ps = power_spectrum(field, box, k_edges=edges, compensate=compensate)
        rk, rp, rc = kept(*np_power(field, box, edges, compensate=compensate))
        np.testing.assert_array_equal(ps.n_modes, rc)
        np.testing.assert_allclose(ps.k, rk, rtol=1e-12)
        np.testing.assert_allclose(ps.power, rp, rtol=1e-10)


@pytest.mark.parametrize("shape,box", SHAPES)
def test_cross_power_and_multipoles_match_bruteforce_fft(shape, box):
    rng = np.random.default_rng(2)
    f1 = rng.normal(size=shape)
    f2 = 0.5 * f1 + rng.normal(size=shape)
    edges = default_k_edges(shape, box)
    ps = cross_power(f1, f2, box, compensate="cic")
    rk, rp, rc = kept(*np_power(f1, box, edges, f2=f2, compensate="cic"))
    np.testing.assert_allclose(ps.power, rp, rtol=1e-10, atol=1e-12 * np.abs(rp).max())
    np.testing.assert_allclose(ps.k, rk, rtol=1e-12)
    # the cross-power is symmetric
    np.testing.assert_allclose(cross_power(f2, f1, box, compensate="cic").power, ps.power, rtol=1e-12)
    for los in (0, 1, 2):
        pm = power_spectrum(f2, box, los=los)
        assert np.shape(pm.power) == (3, len(rk))
        _, rpl, _ = kept(*np_power(f2, box, edges, los=los))
        np.testing.assert_allclose(pm.power, rpl, rtol=1e-10, atol=1e-10 * np.abs(rpl[0]).max())


def test_float32_field_agrees_with_float64_reference():
    rng = np.random.default_rng(3)
    field = rng.normal(size=(32, 32, 32))
    ps32 = power_spectrum(field.astype(np.float32), 100.0, compensate="cic")
    _, rp, _ = kept(*np_power(field, 100.0, default_k_edges((32,) * 3, (100.0,) * 3), compensate="cic"))
    np.testing.assert_allclose(ps32.power, rp, rtol=2e-5)


# ------------------------------------------------------------------------------------------------
# shot noise of Poisson particles, painted with our own numpy NGP / CIC
# ------------------------------------------------------------------------------------------------


def np_paint(pos, n, L, scheme):
    """Number density contrast of particles at pos [Mpc/h]; mesh node j at j * L / n (any offset works)."""
    u = pos / (L / n)
    mesh = np.zeros((n, n, n))
    if scheme == "ngp":
        i = np.floor(u + 0.5).astype(int) % n
        np.add.at(mesh, (i[:, 0], i[:, 1], i[:, 2]), 1.0)
    else:
        i0 = np.floor(u).astype(int)
        f = u - i0
        for dx in (0, 1):
            for dy in (0, 1):
                for dz in (0, 1):
                    w = (np.where(dx, f[:, 0], 1 - f[:, 0]) * np.where(dy, f[:, 1], 1 - f[:, 1])
                         * np.where(dz, f[:, 2], 1 - f[:, 2]))
                    np.add.at(mesh, ((i0[:, 0] + dx) % n, (i0[:, 1] + dy) % n, (i0[:, 2] + dz) % n), w)
    return mesh / mesh.mean() - 1.0


def expected_shot(n, L, edges, n_part, scheme, compensate):
    """Exact <P> per bin of uniform random particles: V/N * sum over aliases of W^2, per mode.

    sum_n W^2(k + 2 pi n / h) = 1 (NGP) and prod_i [1 - 2/3 sin^2(k_i h / 2)] (CIC) (Jing 2005);
    compensation divides by prod_i sinc^(2 p)(k_i h / 2).
    """
    ks, kmod = full_k((n,) * 3, (L,) * 3)
    h = L / n
    alias = np.ones((n, n, n))
    win2 = np.ones((n, n, n))
    for k in ks:
        if scheme == "cic":
            alias = alias * (1 - 2.0 / 3.0 * np.sin(k * h / 2) ** 2)
        win2 = win2 * np.sinc(k * h / (2 * np.pi)) ** (2 * ORDER[scheme])
    e = L**3 / n_part * alias / (win2 if compensate else 1.0)
    idx = np.digitize(kmod.ravel(), edges) - 1
    ok = (idx >= 0) & (idx < len(edges) - 1)
    counts = np.bincount(idx[ok], minlength=len(edges) - 1)
    return np.bincount(idx[ok], e.ravel()[ok], minlength=len(edges) - 1)[counts > 0] / counts[counts > 0]


@pytest.fixture(scope="module")
def poisson_meshes():
    n, L, n_part, reals = 32, 200.0, 65536, 4
    rng = np.random.default_rng(4)
    meshes = {"ngp": [], "cic": []}
    for _ in range(reals):
        pos = rng.uniform(0.0, L, size=(n_part, 3))
        for s in meshes:
            meshes[s].append(np_paint(pos, n, L, s))
    return n, L, n_part, meshes


@pytest.mark.parametrize("scheme,compensate", [("ngp", False), ("ngp", True), ("cic", False), ("cic", True)])
def test_poisson_shot_noise_matches_aliased_window(poisson_meshes, scheme, compensate):
    n, L, n_part, meshes = poisson_meshes
    edges = default_k_edges((n,) * 3, (L,) * 3)
    comp = scheme if compensate else None
    specs = [power_spectrum(m, L, compensate=comp) for m in meshes[scheme]]
    p = np.mean([s.power for s in specs], axis=0)
    modes = specs[0].n_modes
    expected = expected_shot(n, L, edges, n_part, scheme, compensate)
    ratio = p / expected
    # each bin averages n_modes/2 independent exponential |delta_k|^2 per realisation
    sigma = np.sqrt(2.0 / (modes * len(specs)))
    big = modes >= 100
    assert np.all(np.abs(ratio[big] - 1) < 5 * sigma[big]), (ratio, sigma)
    wmean = np.sum(ratio * modes) / modes.sum()
    assert abs(wmean - 1) < 0.01
    if scheme == "cic":
        # the window matters: at the highest bin the uncompensated CIC shot noise is far below V/N and
        # the compensated one far above; both predicted, the measurement must tell them apart
        top = expected[-1] / (L**3 / n_part)
        assert (top < 0.3) if not compensate else (top > 1.2)
        assert abs(ratio[-1] - 1) < 0.05


def test_shot_noise_value_and_subtraction(poisson_meshes):
    n, L, n_part, meshes = poisson_meshes
    assert shot_noise((L, L, L), n_part) == pytest.approx(L**3 / n_part, rel=1e-14)
    assert shot_noise((L, 2 * L, 3 * L), 7) == pytest.approx(6 * L**3 / 7, rel=1e-14)
    sn = shot_noise((L, L, L), n_part)
    raw = power_spectrum(meshes["ngp"][0], L)
    sub = power_spectrum(meshes["ngp"][0], L, shot_noise=sn)
    np.testing.assert_allclose(raw.power - sub.power, sn, rtol=1e-12)
    assert abs(np.sum(sub.power * sub.n_modes) / sub.n_modes.sum()) < 0.02 * sn


def test_shot_noise_accepts_scalar_box_like_power_spectrum():
    # power_spectrum(field, 200.0) means a 200^3 box; shot_noise(200.0, N) must mean the same volume
    assert shot_noise(200.0, 1000) == pytest.approx(200.0**3 / 1000, rel=1e-14)


# ------------------------------------------------------------------------------------------------
# redshift-space multipoles: Kaiser
# ------------------------------------------------------------------------------------------------


def kaiser_field(n, L, f, los, rng, fixed_amplitude, pk):
    """delta_s(k) = (1 + f mu^2) delta(k); delta Gaussian (or |delta_k| fixed, random phases)."""
    white = rng.normal(size=(n, n, n))
    wk = np.fft.fftn(white)
    if fixed_amplitude:
        wk = wk / np.abs(wk) * np.sqrt(n**3)  # <|w_k|^2> = N_c kept, no scatter
    ks, kmod = full_k((n,) * 3, (L,) * 3)
    safe = np.where(kmod > 0, kmod, 1.0)
    mu = ks[los] / safe
    amp = np.where(kmod > 0, np.sqrt(pk(safe) * n**3 / L**3), 0.0)  # V/N_c^2 |delta_k|^2 = P
    return np.fft.ifftn(wk * amp * (1 + f * mu**2)).real


def kaiser_ratios(f):
    p0 = 1 + 2 * f / 3 + f**2 / 5
    return (4 * f / 3 + 4 * f**2 / 7) / p0, (8 * f**2 / 35) / p0


def power_law(k):
    return 1e3 * (k / 0.1) ** -1.5


@pytest.mark.parametrize("los", [0, 1, 2])
def test_kaiser_multipoles_fixed_amplitude(los):
    """No sampling noise: each bin equals (2 ell + 1) <P(k) (1 + f mu^2)^2 L_ell(mu)> over the lattice
    modes of its shell, computed from the formula (not from the field); summed over many shells the
    lattice's uneven sampling of mu averages out and the Kaiser ratios hold to < 1%."""
    n, L, f = 64, 256.0, 0.7
    kf = 2 * np.pi / L
    field = kaiser_field(n, L, f, los, np.random.default_rng(10 + los), True, power_law)
    ps = power_spectrum(field, L, los=los)

    edges = default_k_edges((n,) * 3, (L,) * 3)
    ks, kmod = full_k((n,) * 3, (L,) * 3)
    idx = np.digitize(kmod.ravel(), edges) - 1
    ok = (idx >= 0) & (idx < len(edges) - 1)
    mu = (ks[los] / np.where(kmod > 0, kmod, 1.0)).ravel()[ok]
    E = power_law(kmod.ravel()[ok]) * (1 + f * mu**2) ** 2
    counts = np.bincount(idx[ok], minlength=len(edges) - 1)
    want = np.array([(2 * ell + 1) * np.bincount(idx[ok], E * legendre(ell, mu), minlength=len(counts))
                     for ell in (0, 2, 4)])[:, counts > 0] / counts[counts > 0]
    np.testing.assert_allclose(ps.power, want, rtol=1e-9, atol=1e-9 * np.abs(want).max())

    r2, r4 = kaiser_ratios(f)
    sel = ps.k > 5 * kf
    p0, p2, p4 = (p[sel] for p in ps.power)
    wk = ps.n_modes[sel] / p0  # weights that make every mode of the power-law field count equally
    assert np.sum(p2 * wk) / np.sum(p0 * wk) == pytest.approx(r2, rel=0.01)
    assert np.sum(p4 * wk) / np.sum(p0 * wk) == pytest.approx(r4, rel=0.01)
    # the same field seen along another axis: quadrupole L2(0) = -1/2 times the true one
    other = power_spectrum(field, L, los=(los + 1) % 3)
    q0, q2 = other.power[0][sel], other.power[1][sel]
    assert np.sum(q2 * wk) / np.sum(q0 * wk) == pytest.approx(-0.5 * r2, rel=0.03)


@pytest.mark.parametrize("los", [0, 1, 2])
def test_kaiser_multipoles_gaussian_field(los):
    """Gaussian field with flat P: mode-summed P2/P0 and P4/P0 within 4 sigma of Kaiser."""
    n, L, f = 64, 256.0, 1.0
    field = kaiser_field(n, L, f, los, np.random.default_rng(20 + los), False, lambda k: 500.0 + 0 * k)
    ps = power_spectrum(field, L, los=los)
    w = ps.n_modes
    s0, s2, s4 = (np.sum(p * w) for p in ps.power)
    r2, r4 = kaiser_ratios(f)
    # Gaussian sampling error of the ratio S_ell / S_0 of mode sums, linearised, from the modes
    # themselves: each full-FFT mode holds E = P (1 + f mu^2)^2 and contributes
    # 2 E^2 ((2 ell + 1) L_ell(mu) - R)^2 to the variance (a +-k pair shares one exponential |delta_k|^2)
    edges = default_k_edges((n,) * 3, (L,) * 3)
    ks, kmod = full_k((n,) * 3, (L,) * 3)
    m = (kmod >= edges[0]) & (kmod < edges[-1])
    assert m.sum() == w.sum()
    mu = (ks[los] / np.where(kmod > 0, kmod, 1.0))[m]
    E = (1 + f * mu**2) ** 2
    for ell, got, want in ((2, s2 / s0, r2), (4, s4 / s0, r4)):
        sigma = np.sqrt(2 * np.sum(E**2 * ((2 * ell + 1) * legendre(ell, mu) - want) ** 2)) / E.sum()
        assert abs(got - want) < 4 * sigma, (ell, got, want, sigma)
        assert want > 6 * sigma  # a missing (zero) multipole would sit >= 6 sigma off


def test_shot_noise_subtracted_from_monopole_only():
    rng = np.random.default_rng(5)
    field = rng.normal(size=(16, 16, 16))
    a = power_spectrum(field, 80.0, los=2)
    b = power_spectrum(field, 80.0, los=2, shot_noise=3.5)
    np.testing.assert_allclose(a.power[0] - b.power[0], 3.5, rtol=1e-12)
    np.testing.assert_allclose(a.power[1:], b.power[1:], rtol=1e-12)  # GPU FFTs differ by an ulp between calls
    # monopole of multipoles equals the angle-averaged P(k)
    np.testing.assert_allclose(a.power[0], power_spectrum(field, 80.0).power, rtol=1e-12)


# ------------------------------------------------------------------------------------------------
# cross-correlation and transfer function
# ------------------------------------------------------------------------------------------------


def test_cross_correlation_identities():
    rng = np.random.default_rng(6)
    f = rng.normal(size=(32, 32, 32))
    k, r = cross_correlation(f, f, 100.0)
    np.testing.assert_allclose(r, 1.0, rtol=1e-12)
    _, r = cross_correlation(f, -3.0 * f, 100.0)
    np.testing.assert_allclose(r, -1.0, rtol=1e-12)
    _, t = transfer_function(2.0 * f, f, 100.0)
    np.testing.assert_allclose(t, 2.0, rtol=1e-12)
    _, t = transfer_function(f, 4.0 * f, 100.0, compensate="cic")
    np.testing.assert_allclose(t, 0.25, rtol=1e-12)
    np.testing.assert_allclose(cross_power(f, 2.0 * f, 100.0).power, 2.0 * power_spectrum(f, 100.0).power, rtol=1e-12)


def test_cross_correlation_with_noise_matches_expectation():
    """g = 2 f + n, P_n = 4 P_f: r = 2 P / sqrt(P (4 P + P_n)) = 1/sqrt(2), per bin within 5 sigma."""
    n, L = 32, 100.0
    rng = np.random.default_rng(7)
    f = rng.normal(size=(n, n, n))
    noise = 2.0 * rng.normal(size=(n, n, n))  # white, variance 4: P_n = 4 P_f
    g = 2.0 * f + noise
    k, r = cross_correlation(f, g, L)
    modes = power_spectrum(f, L).n_modes
    r_exp = 2.0 / math.sqrt(4.0 + 4.0)
    # Fisher-z style error of a correlation estimated from M/2 independent complex modes
    sigma = (1 - r_exp**2) / np.sqrt(modes / 2)
    assert np.all(np.abs(np.asarray(r) - r_exp) < 5 * sigma + 1e-12)
    wmean = np.sum(np.asarray(r) * modes) / modes.sum()
    assert abs(wmean - r_exp) < 0.01
    # independent fields: cross-power consistent with zero within sampling error
    px = cross_power(f, noise, L)
    # Var Re(a b*) = E_a E_b / 2 per independent complex pair, M/2 pairs per bin
    scale = np.sqrt(power_spectrum(f, L).power * power_spectrum(noise, L).power / modes)
    assert np.all(np.abs(px.power)[modes >= 50] < 5 * scale[modes >= 50])


# ------------------------------------------------------------------------------------------------
# errors
# ------------------------------------------------------------------------------------------------


def test_errors_name_the_parameter():
    field = np.zeros((8, 8, 8))
    with pytest.raises(ConfigError, match="field2") as e:
        power_spectrum(field, 10.0, field2=np.zeros((8, 8, 6)))
    assert e.value.parameter == "field2"
    with pytest.raises(ConfigError, match="field2"):
        cross_power(field, np.zeros((8, 8)), 10.0)
    with pytest.raises(ConfigError, match="los") as e:
        power_spectrum(field, 10.0, los=5)
    assert e.value.parameter == "los"
    with pytest.raises(ConfigError, match="field") as e:
        power_spectrum(np.zeros((8, 8)), 10.0)
    assert e.value.parameter == "field"
    with pytest.raises(ConfigError):
        power_spectrum(field, 10.0, compensate="foo")
