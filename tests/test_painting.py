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


# --- node-looped kernels (paint_nodes, readout_nodes, readout_grad, paint_stack) against the reference

from jaxpm.painting import paint_nodes, paint_stack, readout_and_grad, readout_grad, readout_nodes  # noqa: E402

SCHEMES = ["ngp", "cic", "tsc"]


def _close(a, b, dtype):
    tol = 1e-12 if dtype == jnp.float64 else 2e-5
    scale = max(1.0, float(jnp.max(jnp.abs(b))))
    assert float(jnp.max(jnp.abs(a - b))) <= tol * scale, (float(jnp.max(jnp.abs(a - b))), scale)


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
@pytest.mark.parametrize("scheme", SCHEMES)
def test_node_kernels_match_the_reference(scheme, dtype):
    pos = _positions(seed=11).astype(dtype).reshape(20, 25, 3)  # any leading shape
    rng = np.random.default_rng(12)
    w = jnp.asarray(rng.uniform(0.5, 2.0, pos.shape[:-1]), dtype)
    m = jnp.asarray(rng.normal(size=SHAPE), dtype)
    ms = jnp.asarray(rng.normal(size=(3,) + SHAPE), dtype)
    for weight in (None, 2.5, w, jnp.asarray(1.5, dtype)):
        _close(paint_nodes(SHAPE, pos, weight, scheme), paint(SHAPE, pos, weight, scheme), dtype)
    _close(paint_nodes(SHAPE, pos, w, scheme, mesh=m), paint(SHAPE, pos, w, scheme, mesh=m), dtype)
    for mesh in (m, ms):
        r = readout_nodes(mesh, pos, scheme)
        assert r.shape == readout(mesh, pos, scheme).shape and r.dtype == dtype
        _close(r, readout(mesh, pos, scheme), dtype)
    cts = jnp.asarray(rng.normal(size=pos.shape), dtype)
    _close(paint_stack(SHAPE, pos, cts, scheme), jnp.stack([paint(SHAPE, pos, cts[..., i], scheme) for i in range(3)]), dtype)
    # with a constant-weight density painted first in the same scatter
    _close(paint_stack(SHAPE, pos, cts, scheme, lead_weight=2.5),
           jnp.stack([paint(SHAPE, pos, 2.5, scheme)] + [paint(SHAPE, pos, cts[..., i], scheme) for i in range(3)]), dtype)


@pytest.mark.parametrize("dtype", [jnp.float64, pytest.param(jnp.float32, marks=pytest.mark.slow)])  # ~6 s each
@pytest.mark.parametrize("scheme", SCHEMES)
def test_node_kernel_gradients_match_the_reference(scheme, dtype):
    pos = _positions(n=300, seed=13).astype(dtype)
    rng = np.random.default_rng(14)
    w = jnp.asarray(rng.uniform(0.5, 2.0, 300), dtype)
    m = jnp.asarray(rng.normal(size=SHAPE), dtype)
    ms = jnp.asarray(rng.normal(size=(3,) + SHAPE), dtype)
    ct = jnp.asarray(rng.normal(size=(300, 3)), dtype)

    def loss(p, ww, sw, mesh, meshes, P, R):
        return (jnp.sum(P(SHAPE, p, ww, scheme) * m) + jnp.sum(P(SHAPE, p, 1.7, scheme) ** 2)
                + jnp.sum(P(SHAPE, p, sw, scheme) * m)
                + jnp.sum(R(meshes, p, scheme) * ct) + jnp.sum(R(mesh, p, scheme) ** 2))

    args = (pos, w, jnp.asarray(0.7, dtype), m, ms)
    got = jax.grad(loss, argnums=range(5))(*args, paint_nodes, readout_nodes)
    ref = jax.grad(loss, argnums=range(5))(*args, paint, readout)
    for g, r in zip(got, ref):
        assert g.shape == r.shape and g.dtype == r.dtype
        _close(g, r, dtype)
    # the direct position gradient of the read-out, with and without cotangents, and accumulated
    _close(readout_grad(ms, pos, scheme, ct), jax.grad(lambda p: jnp.sum(readout(ms, p, scheme) * ct))(pos), dtype)
    _close(readout_grad(m, pos, scheme), jax.grad(lambda p: jnp.sum(readout(m, p, scheme)))(pos), dtype)
    _close(readout_grad(m, pos, scheme, 2.0, add_to=ct), ct + 2.0 * jax.grad(lambda p: jnp.sum(readout(m, p, scheme)))(pos), dtype)
    # values of a stack and, in the same pass, the position gradient of its weighted read-out plus an extra mesh's
    val, grad = readout_and_grad(ms, pos, scheme, ct, extra=m, extra_weight=2.0)
    _close(val, readout(ms, pos, scheme), dtype)
    _close(grad, jax.grad(lambda p: jnp.sum(readout(ms, p, scheme) * ct) + 2.0 * jnp.sum(readout(m, p, scheme)))(pos), dtype)
    # under jit and vmap too
    vm = jax.jit(jax.vmap(lambda p: readout_nodes(m, p, scheme)))(pos.reshape(3, 100, 3))
    _close(vm.reshape(-1), readout(m, pos, scheme), dtype)


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
def test_gather_reads_a_stack_as_rows_or_columns_alike(monkeypatch, dtype):
    # readout_and_grad reads a stack as (P, C) rows on the CPU and as C (P,) columns on GPUs
    # (painting.GATHER_COLUMNS): both forms must give the same values and gradient
    import jaxpm.painting as painting

    pos = _positions(n=300, seed=18).astype(dtype)
    rng = np.random.default_rng(19)
    ms = jnp.asarray(rng.normal(size=(3,) + SHAPE), dtype)
    m = jnp.asarray(rng.normal(size=SHAPE), dtype)
    ct = jnp.asarray(rng.normal(size=(300, 3)), dtype)
    out = {}
    for columns in (False, True):
        monkeypatch.setattr(painting, "GATHER_COLUMNS", columns)
        out[columns] = [np.asarray(a) for a in readout_and_grad(ms, pos, "tsc", ct, extra=m, extra_weight=2.0)]
    ref = jax.grad(lambda p: jnp.sum(readout(ms, p, "tsc") * ct) + 2.0 * jnp.sum(readout(m, p, "tsc")))(pos)
    for a, b in zip(out[False], out[True]):
        np.testing.assert_allclose(a, b, rtol=0, atol=(1e-12 if dtype == jnp.float64 else 2e-5) * np.abs(a).max())
    _close(out[True][0], readout(ms, pos, "tsc"), dtype)
    _close(out[True][1], ref, dtype)


def test_node_kernels_second_order_reverse_mode():
    # the custom VJPs' backward passes are plain JAX: reverse-over-reverse works
    pos = _positions(n=40, seed=15)
    m = jnp.asarray(np.random.default_rng(16).normal(size=SHAPE))
    v = jnp.asarray(np.random.default_rng(17).normal(size=pos.shape))
    hvp = lambda R: jax.grad(lambda p: jnp.vdot(jax.grad(lambda q: jnp.sum(R(m, q, "tsc") ** 2))(p), v))(pos)
    np.testing.assert_allclose(hvp(readout_nodes), hvp(readout), atol=1e-10)


def test_node_kernels_refuse_forward_mode():
    # custom_vjp functions have no forward-mode rule; the reference paint/readout support it
    pos = _positions(n=10, seed=18)
    m = jnp.ones(SHAPE)
    with pytest.raises(TypeError):
        jax.jvp(lambda p: readout_nodes(m, p, "cic"), (pos,), (pos,))
    jax.jvp(lambda p: readout(m, p, "cic"), (pos,), (pos,))
