"""Pencil r2c FFT, halo painting/reading and particle migration against the single-device reference."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxpm
from jaxpm import fourier
from jaxpm.forces import paint_mesh, read_mesh
from jaxpm.halo import MigrationOverflow, check_migration

PDIMS = [(1, 8), (8, 1), (2, 4), (4, 2), (2, 2)]


def domain(pd, particles=16, **kw):
    kw.setdefault("dtype", "float64")
    return jaxpm.Domain.create(particles, 100.0, pdims=pd, devices=jax.devices()[: pd[0] * pd[1]], **kw)


def rel(a, b):
    """Max difference relative to the reference's largest value (absolute where it is all zeros: NGP
    position gradients)."""
    a, b = np.asarray(a), np.asarray(b)
    assert np.all(np.isfinite(a))
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300 if np.any(b) else 1.0))


@pytest.mark.parametrize("pd", PDIMS)
def test_pencil_rfft_matches_numpy(pd):
    shape = (16, 16, 12)  # Z/2 + 1 = 7: padded to a multiple of py
    d = domain(pd, particles=shape)
    x = np.random.default_rng(1).normal(size=shape)
    xk = jax.jit(lambda a: fourier.rfftn(a, d))(d.put(x))
    assert xk.shape == d.fourier_shape(shape)
    ref = np.fft.rfftn(x)
    assert rel(np.asarray(xk)[:, :, :7], ref) < 1e-13
    assert np.all(np.asarray(xk)[:, :, 7:] == 0)  # padding planes hold zeros
    back = jax.jit(lambda a: fourier.irfftn(a, shape, d))(xk)
    assert rel(back, x) < 1e-13
    # gradient of a filtered round trip equals the single-device one (a linear map: its transpose)
    w = np.random.default_rng(2).normal(size=shape)
    kv = fourier.kvectors(shape, d.box, jnp.float64, d)
    filt = lambda a, dom, kvec: jnp.sum(fourier.irfftn(fourier.rfftn(a, dom) * jnp.exp(-fourier.kmodulus(kvec) ** 2), shape, dom) ** 2 * w)
    g = jax.jit(jax.grad(lambda a: filt(a, d, kv)))(d.put(x))
    g1 = jax.grad(lambda a: filt(a, None, fourier.kvectors(shape, d.box, jnp.float64)))(jnp.asarray(x))
    assert rel(g, g1) < 1e-12


def _far_particles(d, scale):
    """Positions (mesh units) moved by up to ``scale`` blocks, and their fraction outside the halo."""
    rng = np.random.default_rng(3)
    dx = rng.uniform(-1, 1, size=d.particles + (3,)) * scale * 100.0 / 4
    d1 = jaxpm.Domain.create(d.particles, d.box, dtype=d.dtype, devices=jax.devices()[:1])
    return np.asarray(d1.to_mesh_units(jnp.asarray(dx))), d1


@pytest.mark.parametrize("pd, scheme", [(pd, "cic") for pd in PDIMS] + [((2, 4), "tsc"), ((4, 2), "ngp")])
def test_paint_and_read_far_particles(pd, scheme):
    d = domain(pd, halo=1, capacity=1.0)
    pos, d1 = _far_particles(d, scale=1.0)  # displacements up to a quarter box: many blocks, >> halo
    moved = np.abs(pos - np.asarray(d1.to_mesh_units(jnp.zeros(d.particles + (3,))))).max(axis=-1)
    assert np.mean(moved > 2) > 0.5  # most particles leave halo and block: migration is exercised
    wts = np.random.default_rng(4).uniform(0.5, 1.5, size=d.particles)
    field = np.random.default_rng(5).normal(size=(3,) + d.mesh_shape)

    def run(dom, p, w, f):
        m = paint_mesh(dom, p, w, scheme)
        r = read_mesh(dom, f, p, scheme)
        return m, r, jnp.sum(m * f[0]) + jnp.sum(r ** 2 * w[..., None])

    m1, r1, _ = run(d1, jnp.asarray(pos), jnp.asarray(wts), jnp.asarray(field))
    m, r, _ = jax.jit(lambda p, w, f: run(d, p, w, f))(d.put(pos), d.put(wts), d.put(field, "stack"))
    assert rel(m, m1) < 1e-12 and rel(r, r1) < 1e-12
    # gradients with respect to positions, weights and the read mesh: the true adjoints
    grad = jax.grad(lambda p, w, f, dom: run(dom, p, w, f)[2], argnums=(0, 1, 2))
    g1 = grad(jnp.asarray(pos), jnp.asarray(wts), jnp.asarray(field), d1)
    g = jax.jit(lambda p, w, f: grad(p, w, f, d))(d.put(pos), d.put(wts), d.put(field, "stack"))
    for a, b in zip(g, g1):
        assert rel(a, b) < 1e-11
    check_migration()


def test_overflow_poisons_and_names_the_remedy():
    d = domain((2, 4), halo=1, capacity=0.01)
    pos, d1 = _far_particles(d, scale=1.0)
    with pytest.warns(RuntimeWarning, match="overflow"):
        m = jax.block_until_ready(jax.jit(lambda p: paint_mesh(d, p, 1.0))(d.put(pos)))
    assert np.all(np.isnan(np.asarray(m)))
    with pytest.raises(MigrationOverflow, match="capacity"):
        check_migration()
    check_migration()  # the record is cleared


@pytest.mark.parametrize("pd", [(2, 4), (1, 8)])
def test_distributed_power_spectrum_matches_one_device(pd):
    from jaxpm.observables import domain_modes, power_spectrum

    shape = (16, 16, 16)
    d = domain(pd)
    x = np.random.default_rng(6).normal(size=shape)
    ref = power_spectrum(x, d.box, compensate="cic", los=2)
    got = power_spectrum(d.put(x), d.box, compensate="cic", los=2, modes=domain_modes(d))
    np.testing.assert_allclose(np.asarray(got.power), np.asarray(ref.power), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(np.asarray(got.n_modes), np.asarray(ref.n_modes))  # padding planes not counted
    np.testing.assert_allclose(np.asarray(got.k), np.asarray(ref.k), rtol=1e-13)
