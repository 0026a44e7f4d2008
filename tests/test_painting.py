"""Mass assignment: conservation, adjointness of paint and read-out, exactness on polynomials."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpm.painting import paint, readout

SHAPE = (12, 10, 14)


def _positions(n=500, seed=0, spread=3.0):
    rng = np.random.default_rng(seed)
    # includes negative and > N coordinates: wrapping must be periodic
    return jnp.asarray(rng.uniform(-spread, 1 + spread, (n, 3)) * np.array(SHAPE) / 2)


@pytest.mark.parametrize("scheme", ["ngp", "cic", "tsc"])
def test_total_mass_is_exact(scheme):
    pos = _positions()
    w = jnp.asarray(np.random.default_rng(1).uniform(0.5, 2.0, pos.shape[0]))
    mesh = paint(SHAPE, pos, w, scheme)
    assert mesh.shape == SHAPE
    assert abs(float(mesh.sum()) - float(w.sum())) < 1e-12 * float(w.sum())
    assert float(mesh.min()) >= 0.0


@pytest.mark.parametrize("scheme", ["ngp", "cic", "tsc"])
def test_paint_and_readout_are_adjoint(scheme):
    pos = _positions(seed=2)
    w = jnp.asarray(np.random.default_rng(3).normal(size=pos.shape[0]))
    m = jnp.asarray(np.random.default_rng(4).normal(size=SHAPE))
    lhs = jnp.vdot(paint(SHAPE, pos, w, scheme), m)
    rhs = jnp.vdot(w, readout(m, pos, scheme))
    assert abs(float(lhs - rhs)) < 1e-10 * abs(float(lhs))


def test_reference_weights_by_hand():
    # CIC of one particle at (1.25, 2.5, 0.75): separable weights
    m = paint((4, 4, 4), jnp.array([[1.25, 2.5, 0.75]]), scheme="cic")
    wx, wy, wz = {1: 0.75, 2: 0.25}, {2: 0.5, 3: 0.5}, {0: 0.25, 1: 0.75}
    expect = np.zeros((4, 4, 4))
    for i, a in wx.items():
        for j, b in wy.items():
            for k, c in wz.items():
                expect[i, j, k] = a * b * c
    np.testing.assert_allclose(m, expect, atol=1e-15)
    # TSC of a particle on a node: 3/4 on it, 1/8 on each neighbour per axis
    m = paint((5, 5, 5), jnp.array([[2.0, 2.0, 2.0]]), scheme="tsc")
    w1 = np.array([0.125, 0.75, 0.125])
    np.testing.assert_allclose(m[1:4, 1:4, 1:4], np.einsum("i,j,k->ijk", w1, w1, w1), atol=1e-15)


@pytest.mark.parametrize("scheme, degree", [("cic", 1), ("tsc", 1)])
def test_readout_interpolates_linear_functions_exactly(scheme, degree):
    # away from the periodic seam, CIC and TSC reproduce a linear function exactly
    x = np.arange(SHAPE[0])[:, None, None] + 0 * np.zeros(SHAPE)
    mesh = jnp.asarray(2.0 * x + 1.0)
    pos = jnp.asarray(np.random.default_rng(5).uniform(2, SHAPE[0] - 3, (200, 3)) * np.array([1, 0.5, 0.5]))
    np.testing.assert_allclose(readout(mesh, pos, scheme), 2.0 * pos[:, 0] + 1.0, atol=1e-12)


def test_readout_of_a_stack_matches_separate_reads():
    pos = _positions(seed=6)
    ms = jnp.asarray(np.random.default_rng(7).normal(size=(3,) + SHAPE))
    stacked = readout(ms, pos, "cic")
    for c in range(3):
        np.testing.assert_allclose(stacked[:, c], readout(ms[c], pos, "cic"), atol=1e-13)


def test_position_gradient_matches_finite_differences():
    pos = _positions(n=50, seed=8)
    m = jnp.asarray(np.random.default_rng(9).normal(size=SHAPE))
    f = lambda p: jnp.sum(paint(SHAPE, p, 1.0, "tsc") * m) + jnp.sum(readout(m, p, "cic") ** 2)
    g = jax.grad(f)(pos)
    eps = 1e-7
    direction = jnp.asarray(np.random.default_rng(10).normal(size=pos.shape))
    fd = (f(pos + eps * direction) - f(pos - eps * direction)) / (2 * eps)
    assert abs(float(jnp.vdot(g, direction)) / float(fd) - 1) < 1e-6
