"""The "real" latent layout (the one that works on a sharded Domain) against independent references:
the rotation of the packed "modes" latent, a dense Gaussian on a tiny grid, the prior's power spectrum
and the Kaiser-posterior identity."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jaxpm
from inference import fields
from inference.model import FieldModel, ModelSpec
from inference.precondition import ColouredNormal, white_to_latent
from inference.priors import REFERENCE_PRIORS
from jaxpm.observables import _bin, power_spectrum

FID = {p.name: p.loc_fid for p in REFERENCE_PRIORS}
OFF = dict(Omega_m=0.33, sigma8=0.75, b1=1.3, b2=0.2, bs2=-0.1, bn2=0.3)


def _model(n=8, box=None, **kw):
    shape = n if isinstance(n, tuple) else (n,) * 3
    box = box or tuple(5.0 * v for v in shape)
    d = jaxpm.Domain.create(shape, box, dtype="float64")
    return FieldModel(ModelSpec(domain=d, cosmology=jaxpm.Cosmology(), **kw))


def _scale(m, th):
    """(P~(k), S(k)) of model ``m`` at ``th`` (jitted: eager cosmology is slow to dispatch)."""

    def f():
        cosmo = m.cosmo(th)
        pk = m.pk_cell(cosmo)
        _, D, f = m.growth(cosmo)
        return pk, m.latent_scale(th, pk, D, f)

    return jax.jit(f)()


def rotate(d, z_modes):
    """R z = F^-1 H(z): packed Fourier slots -> real-space field."""
    return fields.irfftn(d, fields.pack(d, z_modes))


def test_coloured_normal_is_the_dense_gaussian_on_a_tiny_grid():
    """log p(z) of the kaiser_dyn "real" latent against the dense N(0, A A^T), A = F^-1 S F built column
    by column, on a non-cubic 4 x 6 x 8 grid (Nyquist planes on every axis); log det A = sum_full log S."""
    m = _model((4, 6, 8), evolution="lpt", precond="kaiser_dyn", latent="real")
    d = m.domain
    _, S = _scale(m, OFF)
    n = d.n_particles
    basis = jnp.eye(n, dtype=jnp.float64).reshape((n,) + d.particles)
    A = np.asarray(jax.vmap(lambda e: white_to_latent(d, e, S, "real"))(basis)).reshape(n, n).T
    np.testing.assert_allclose(A, A.T, atol=1e-12)  # S(k) = S(-k): a symmetric operator
    sign, logdet = np.linalg.slogdet(A)
    law = ColouredNormal(d, S)
    assert sign == 1 and float(law.log_det()) == pytest.approx(logdet, rel=1e-12)
    assert logdet > 5  # not a trivial Jacobian
    # the same sum as the "modes" layout's per-slot scales
    assert float(law.log_det()) == pytest.approx(float(jnp.sum(jnp.log(fields.amp_layout(d, S)))), rel=1e-12)
    for seed in range(3):
        z = np.random.default_rng(seed).normal(size=d.particles) * 2.0
        ref = stats.multivariate_normal(np.zeros(n), A @ A.T).logpdf(z.ravel())
        assert float(law.log_prob(jnp.asarray(z))) == pytest.approx(ref, rel=1e-11)


@pytest.mark.parametrize("precond", [pytest.param("fourier", marks=pytest.mark.slow), "kaiser",
                                     pytest.param("kaiser_dyn", marks=pytest.mark.slow)])  # 8-11 s each
def test_real_latent_is_the_rotated_modes_latent(precond):
    """z_real = F^-1 H(z_modes) is an orthogonal change of variables: same delta_L and the same
    log-density (no constant or Jacobian between them), and gradients rotate the same way."""
    # the identity is about the latent map and the prior: the cheap Kaiser evolution is enough here
    mm, mr = (_model(8, evolution="kaiser", precond=precond, latent=lat) for lat in ("modes", "real"))
    d = mm.domain
    data = jax.jit(lambda: mm.mock(OFF, 1))()
    zm = jax.random.normal(jax.random.key(2), d.particles, jnp.float64) * 1.5
    zr = rotate(d, zm)
    assert float(jnp.sum(zr**2)) == pytest.approx(float(jnp.sum(zm**2)), rel=1e-13)  # R is orthogonal
    lat = mm.latent_scalars(OFF)
    xm, xr = mm.flatten(lat | {"init_mesh_": zm}), mr.flatten(lat | {"init_mesh_": zr})
    np.testing.assert_allclose(mr.constrain(xr)["init_mesh"], mm.constrain(xm)["init_mesh"], rtol=0, atol=1e-13)
    if precond != "kaiser_dyn":
        vals = [float(jax.jit(m.logdensity_fn(data["obs"]))(x)) for m, x in ((mm, xm), (mr, xr))]
        assert vals[1] == pytest.approx(vals[0], rel=1e-12, abs=1e-9)
    else:
        # cosmology fixed (cheaper to compile); b1 free: S(k; b1) and its Jacobian term move with it
        fixed = {"Omega_m": OFF["Omega_m"], "sigma8": OFF["sigma8"]}
        xm, xr = xm[2:], xr[2:]
        (vm, gm), (vr, gr) = (jax.jit(jax.value_and_grad(m.logdensity_fn(data["obs"], fixed)))(x)
                              for m, x in ((mm, xm), (mr, xr)))
        assert float(vr) == pytest.approx(float(vm), rel=1e-12, abs=1e-9)
        np.testing.assert_allclose(gr[:4], gm[:4], rtol=1e-9, atol=1e-9)
        assert abs(float(gr[0])) > 1.0  # d log p / d y_b1 is not trivially small
        # gradient of the field: R g_modes (R orthogonal, so R^-T = R)
        np.testing.assert_allclose(gr[4:].reshape(d.particles), rotate(d, gm[4:].reshape(d.particles)), atol=1e-10)


def _power_zscores(field, m, theory_scale=1.0):
    """z-scores per k bin of the measured P(k) against the prior's P(k) (times ``theory_scale`` per mode)."""
    d = m.domain
    edges = np.arange(0.5, d.particles[0] // 2, 1.0) * 2 * np.pi / d.box[0]
    meas = power_spectrum(field, d.box, k_edges=edges, drop_empty=False)
    pk, _ = _scale(m, FID)
    _, k, _ = fields.kgrid(d, None)
    _, theory, cnt = _bin(pk * m.v_cell * theory_scale, k, fields.mode_weights(d), tuple(edges))
    cnt = np.asarray(cnt)
    # |delta_k|^2 / <|delta_k|^2> per Hermitian pair ~ Exp(1): the bin mean over cnt/2 pairs has sd sqrt(2/cnt)
    return (np.asarray(meas.power) / np.asarray(theory) - 1.0) / np.sqrt(2.0 / cnt)


def test_prior_draws_of_the_real_latent_have_power_P():
    """z from the kaiser_dyn prior (z = F^-1 S F w) -> delta_L with power P(k) in every bin (chi^2 of 15 bins
    over 4 draws of 32^3); the same z read as unit white noise (no S) is rejected by the same test."""
    m = _model(32, evolution="lpt", precond="kaiser_dyn", latent="real")
    d = m.domain
    pk, S = _scale(m, FID)
    law = ColouredNormal(d, S)
    chi2, chi2_wrong, nb = 0.0, 0.0, 0
    cosmo = m.cosmo(FID)
    draw = jax.jit(lambda key: (z := law.sample(key), m.linear(z, pk, S, cosmo), m.linear(z, pk, jnp.ones_like(S), cosmo)))
    for seed in range(4):
        _, dl, dl_white = draw(jax.random.key(seed))
        zs = _power_zscores(dl, m)
        assert np.max(np.abs(zs)) < 4.5, zs
        chi2 += float(np.sum(zs**2))
        nb += zs.size
        # reading the prior draw as if it were white (the Jacobian/scale missing): power P S^2, far off
        chi2_wrong += float(np.sum(_power_zscores(dl_white, m) ** 2))
    assert abs(chi2 - nb) < 5 * np.sqrt(2 * nb), (chi2, nb)
    assert chi2_wrong > nb + 50 * np.sqrt(2 * nb), chi2_wrong
    # S is far from 1 on large scales, so the check has teeth
    assert float(jnp.max(S)) ** 2 > 5


def test_kaiser_init_is_the_posterior_mode_and_the_posterior_is_unit_normal():
    """Kaiser evolution, scalars fixed at the fiducial values, "real" latent: the log-density is exactly
    -|z - m_z|^2 / 2 + const, i.e. its gradient vanishes at kaiser_init(temperature=0) and its Hessian is -I;
    kaiser_init(temperature=1) is m_z + xi with xi the chain's white noise (k = 0 component removed)."""
    m = _model(8, evolution="kaiser", precond="kaiser", latent="real")
    data = jax.jit(lambda: m.mock(FID, 0))()
    ld = jax.jit(m.logdensity_fn(data["obs"], FID))
    init = jax.jit(lambda t: m.kaiser_init(jax.random.key(5), data["obs"], 2, FID, temperature=t))
    x0 = init(0.0)
    v = jax.random.normal(jax.random.key(6), x0[0].shape, jnp.float64)
    g, hv = jax.jit(lambda x, v: jax.jvp(jax.grad(ld), (x,), (v,)))(x0[0], v)
    assert float(jnp.max(jnp.abs(g))) < 1e-9
    np.testing.assert_allclose(hv, -v, atol=1e-9)
    x1 = init(1.0)
    xi = jax.random.normal(jax.random.split(jax.random.key(5), 2)[1], m.domain.particles, jnp.float64).ravel()
    np.testing.assert_allclose(x1[1] - x0[1], xi - xi.mean(), atol=1e-12)
    # the mode is far from the prior mean: the data matter
    assert float(jnp.std(x0[0])) > 0.3
