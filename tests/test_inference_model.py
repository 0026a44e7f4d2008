"""Forward model, packing, priors and parametrisations of `inference`, each against an independent reference."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jaxpm
from inference import fields
from inference.model import FieldModel, ModelSpec
from inference.precondition import latent_from_linear
from inference.priors import REFERENCE_PRIORS
from inference.rsd import rsd_shift
from jaxpm.lpt import lpt_displacements

TRUTH = dict(Omega_m=0.3, sigma8=0.8, b1=1.0, b2=0.0, bs2=0.0, bn2=0.0)


def _model(n=8, box=None, **kw):
    d = jaxpm.Domain.create(n, box or 5.0 * n, dtype="float64")
    return FieldModel(ModelSpec(domain=d, cosmology=jaxpm.Cosmology(), **kw))


def test_pack_is_isometry_onto_hermitian_arrays_and_inverse():
    d = jaxpm.Domain.create((8, 6, 4), (40.0, 30.0, 20.0), dtype="float64")
    z = jax.random.normal(jax.random.key(0), d.particles, jnp.float64)
    c = fields.pack(d, z)
    # Hermitian: c is the rfft of a real field
    np.testing.assert_allclose(fields.rfftn(d, fields.irfftn(d, c)), c, atol=1e-12)
    np.testing.assert_allclose(fields.unpack(d, c), z, atol=1e-13)
    # isometry: sum over full-FFT modes of |c|^2 = N_c sum z^2 (as Parseval for rfftn of white noise)
    full = jnp.fft.fftn(fields.irfftn(d, c))
    np.testing.assert_allclose(jnp.sum(jnp.abs(full) ** 2), d.n_particles * jnp.sum(z**2), rtol=1e-12)
    # one slot per mode: the amplitude layout puts S(k) on both slots of a mode
    _, k, _ = fields.kgrid(d, None)
    s = fields.amp_layout(d, 1.0 + k)
    np.testing.assert_allclose(fields.pack(d, z * s), (1.0 + k) * c, atol=1e-11)


def test_fourier_latent_reproduces_engine_linear_field():
    m = _model(precond="fourier")
    z = jax.random.normal(jax.random.key(1), m.domain.particles, jnp.float64)
    cosmo = m.cosmo(TRUTH)
    ours = latent_from_linear  # noqa: F841 (documentation of the inverse)
    dl = m.constrain(m.flatten(m.latent_scalars(TRUTH) | {"init_mesh_": z}))["init_mesh"]
    engine = jaxpm.linear_field(m.domain, cosmo, fields.irfftn(m.domain, fields.pack(m.domain, z)))
    np.testing.assert_allclose(dl, engine, rtol=1e-10, atol=1e-12)


def test_rsd_shift_is_f_D_psi_for_1lpt():
    d = jaxpm.Domain.create(8, 40.0, dtype="float64")
    cosmo = jaxpm.Cosmology()
    dl = jaxpm.linear_field_from_seed(d, cosmo, 3)
    a = 0.5
    dx, p = jaxpm.lpt(d, cosmo, dl, a, order=1)
    psi, _ = lpt_displacements(d, dl, 1)
    g = jaxpm.growth_table(cosmo)
    np.testing.assert_allclose(rsd_shift(cosmo, p, a, 2), g.f1(a) * g.D1(a) * psi[..., 2], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("prior", REFERENCE_PRIORS, ids=lambda p: p.name)
def test_reparametrisation_pushes_latent_normal_onto_prior(prior):
    u = np.array([0.001, 0.02, 0.2, 0.5, 0.8, 0.98, 0.999])
    lat = prior.latent()
    y = np.asarray(lat.icdf(jnp.asarray(u)))
    theta = np.asarray(prior.to_base(jnp.asarray(y)))
    np.testing.assert_allclose(theta, prior.base_prior().ppf(u), rtol=1e-7, atol=1e-9)
    # near the fiducial point: theta = loc_fid + scale_fid y + O(y^2)
    assert float(prior.to_base(jnp.float64(0.0))) == pytest.approx(prior.loc_fid, abs=1e-10)
    assert float(jax.grad(prior.to_base)(0.0)) == pytest.approx(prior.scale_fid, rel=1e-6)
    assert prior.to_latent(float(theta[3])) == pytest.approx(y[3], abs=1e-7)


def test_dynamic_kaiser_logdensity_carries_the_jacobian():
    """Same delta_L, two parametrisations: log p differs by exactly -sum log s(theta) (notes check iii)."""
    mf, mk, ms = (_model(evolution="kaiser", precond=p) for p in ("fourier", "kaiser_dyn", "kaiser"))
    data = mf.mock(TRUTH, 0)
    dk = fields.rfftn(mf.domain, data["init_mesh"])
    for th in (TRUTH, dict(TRUTH, Omega_m=0.33, sigma8=0.75, b1=1.3)):
        cosmo = mf.cosmo(th)
        pk = mf.pk_cell(cosmo)
        _, D, f = mf.growth(cosmo)
        lat = mf.latent_scalars(th)
        vals = {}
        for m in (mf, mk, ms):
            S = m.latent_scale(th, pk, D, f)
            z = latent_from_linear(m.domain, m.spec.precond, dk, pk, S)
            vals[m.spec.precond] = (m.logdensity_fn(data["obs"])(m.flatten(lat | {"init_mesh_": z})),
                                    jnp.sum(jnp.log(fields.amp_layout(m.domain, S))))
        ref = vals["fourier"][0]
        for pre in ("kaiser_dyn", "kaiser"):
            assert float(vals[pre][0] - ref) == pytest.approx(-float(vals[pre][1]), rel=1e-9, abs=1e-7)
        assert float(vals["kaiser_dyn"][1]) > 20  # the term is not negligible


def test_lpt_forward_matches_kaiser_at_small_amplitude():
    """1LPT + bias + RSD + CIC painting with compensation reduces to the Kaiser model D (b_E + f mu^2)
    delta_L when displacements are small (independent derivation: Zel'dovich density at linear order)."""
    th = dict(TRUTH, sigma8=0.01, b1=0.7)
    meshes = {}
    for evo in ("lpt", "kaiser"):
        m = _model(16, evolution=evo, precond="fourier")
        meshes[evo] = np.asarray(m.mock(th, 2)["gxy_mesh"]) - 1.0
    k_edges = np.linspace(0.5, 6.5, 7) * 2 * np.pi / 80.0
    from jaxpm.observables import power_spectrum

    p_l = power_spectrum(meshes["lpt"], 80.0, k_edges=k_edges).power
    p_k = power_spectrum(meshes["kaiser"], 80.0, k_edges=k_edges).power
    p_x = power_spectrum(meshes["lpt"], 80.0, field2=meshes["kaiser"], k_edges=k_edges).power
    np.testing.assert_allclose(p_x / np.sqrt(p_l * p_k), 1.0, atol=5e-3)  # 0.43 at the last bin without the half-cell phase
    # amplitude: equal on large scales; below k_Nyq/2 the lattice's aliased CIC response (sum over
    # images of the window, not divided out by the compensation) lowers it by up to ~15 %
    np.testing.assert_allclose(p_l[:2] / p_k[:2], 1.0, atol=1.5e-2)


def test_mock_noise_variance_and_mean_density():
    m = _model(16)
    data = m.mock(TRUTH, 5)
    assert float(jnp.mean(data["gxy_mesh"])) == pytest.approx(1.0, abs=1e-12)  # weights average to 1
    resid = np.asarray(data["obs"] - data["gxy_mesh"])
    assert m.nbar == pytest.approx(0.125)
    assert resid.var() == pytest.approx(1.0 / m.nbar, rel=0.08)  # 4096 cells: 2.2 % standard error


def test_gradient_matches_finite_differences():
    m = _model(8, los=2, precond="kaiser_dyn")
    th = dict(TRUTH, b2=0.3, bs2=-0.2, bn2=0.5)
    data = m.mock(th, 1)
    ld = jax.jit(m.logdensity_fn(data["obs"]))
    x = data["position"] + 0.1 * jax.random.normal(jax.random.key(3), data["position"].shape, jnp.float64)
    g = jax.grad(ld)(x)
    v = jax.random.normal(jax.random.key(4), x.shape, jnp.float64)
    for direction in (v, jnp.zeros_like(x).at[1].set(1.0), jnp.zeros_like(x).at[0].set(1.0)):
        h = 1e-4
        fd = (ld(x + h * direction) - ld(x - h * direction)) / (2 * h)
        assert float(jnp.dot(g, direction)) == pytest.approx(float(fd), rel=1e-6, abs=1e-6)


def test_wiener_init_is_typical_of_the_kaiser_posterior():
    """Draws from the Kaiser Wiener posterior have log-densities within a few sqrt(d) of the truth's
    (analytic: -2 log p of a Gaussian posterior draw is chi^2-like with spread ~sqrt(2 d))."""
    m = _model(16, evolution="kaiser", precond="kaiser")
    th = {p.name: p.loc_fid for p in REFERENCE_PRIORS}
    data = m.mock(th, 0)
    ld = jax.jit(m.logdensity_fn(data["obs"], fixed=th))
    x0 = m.kaiser_init(jax.random.key(0), data["obs"], 3, fixed=th)
    lp_truth = float(ld(data["init_mesh_"].ravel()))
    spread = math.sqrt(2 * m.domain.n_particles)
    for x in x0:
        assert abs(float(ld(x)) - lp_truth) < 4 * spread


def test_truncated_prior_maps_to_support_in_float32_tails():
    p = REFERENCE_PRIORS[1]  # sigma8, [0, inf)
    y = jnp.asarray([-200.0, -50.0, 0.0, 50.0, 200.0], jnp.float32)
    t = np.asarray(p.to_base(y))
    assert np.all(np.isfinite(t)) and np.all(t >= 0) and np.all(np.diff(t) >= 0)
    assert np.all(np.isfinite(np.asarray(jax.vmap(jax.grad(p.to_base))(y))))
    assert stats.truncnorm is not None
