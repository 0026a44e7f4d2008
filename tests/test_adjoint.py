"""Reverse-time adjoint: agreement with autodiff and finite differences, reversibility, memory."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpm import Cosmology, Domain, ForceSpec, density, linear_field, lpt, simulate, white_noise
from jaxpm.cosmology import growth_table
from jaxpm.errors import ConfigError
from jaxpm.forces import pm_forces, pm_forces_and_meshes, pm_forces_and_vjp, pm_forces_vjp
from jaxpm.observables import power_spectrum
from jaxpm.simulation import make_time_grid
from jaxpm.steppers import fastpm, integrate

BASE = Cosmology()


def _loss_fn(d, autodiff, steps=5, stepper="fastpm", rich=True):
    w = jnp.asarray(np.random.default_rng(0).normal(size=d.mesh_shape), d.real_dtype)

    def loss(noise, om, s8):
        c = BASE.replace(Omega_m=om, sigma8=s8)
        lin = linear_field(d, c, noise)
        snaps = simulate(d, c, lin, a_init=0.1, a_out=[0.5, 1.0] if rich else [1.0], steps=steps, stepper=stepper,
                         force=ForceSpec(paint="tsc"), autodiff=autodiff)
        if not rich:
            return jnp.sum(w * density(d, snaps[-1].dx, "tsc"))
        # a mesh observable at z = 0, the binned P(k) at z = 0, and the momenta of the z = 1 snapshot
        delta = density(d, snaps[-1].dx, "tsc") - 1
        pk = power_spectrum(delta, d.box, drop_empty=False).power
        return jnp.sum(w * delta) + 1e-3 * jnp.sum(pk) + 1e-2 * jnp.sum(snaps[0].p ** 2)

    return loss


@pytest.mark.parametrize("stepper", ["fastpm", pytest.param("leapfrog", marks=pytest.mark.slow)])
def test_adjoint_equals_autodiff_in_float64(stepper):
    # the rich loss (two snapshots, P(k)): the adjoint's cotangents injected at an intermediate output
    d = Domain.create(16, 64.0, dtype="float64")
    noise = white_noise(d, 1)
    grads = {ad: jax.jit(jax.grad(_loss_fn(d, ad, stepper=stepper), argnums=(0, 1, 2)))(noise, 0.31, 0.81)
             for ad in ("store", "adjoint")}
    ref, adj = grads["store"], grads["adjoint"]
    assert float(jnp.sqrt(jnp.mean((adj[0] - ref[0]) ** 2)) / jnp.std(ref[0])) < 1e-8
    for i in (1, 2):
        assert abs(float(adj[i]) / float(ref[i]) - 1) < 1e-8


# -m slow to keep make test under 20 minutes: the float64 equality with autodiff (above, same loss) holds the
# adjoint in the default suite, and tests/test_gradients.py holds autodiff to finite differences
@pytest.mark.slow
def test_adjoint_matches_finite_differences():
    d = Domain.create(16, 64.0, dtype="float64")
    noise = white_noise(d, 2)
    loss = jax.jit(_loss_fn(d, "adjoint"))
    g = jax.jit(jax.grad(_loss_fn(d, "adjoint"), argnums=(0, 1, 2)))(noise, 0.31, 0.81)
    v = jnp.asarray(np.random.default_rng(3).normal(size=d.particles))
    eps = 1e-5
    fd = (loss(noise + eps * v, 0.31, 0.81) - loss(noise - eps * v, 0.31, 0.81)) / (2 * eps)
    assert abs(float(jnp.vdot(g[0], v)) / float(fd) - 1) < 1e-4
    eps = 1e-6
    for i, x in ((1, 0.31), (2, 0.81)):
        args = [noise, 0.31, 0.81]
        args[i] = x + eps
        up = loss(*args)
        args[i] = x - eps
        fd = (up - loss(*args)) / (2 * eps)
        assert abs(float(g[i]) / float(fd) - 1) < 1e-4


@pytest.mark.slow  # make test under 20 minutes: float64 equality (above) holds the adjoint; this checks float32 rounding
def test_adjoint_in_float32_is_close_to_autodiff():
    # pmwd reports an adjoint-vs-autodiff RMS of 2.7e-3 of the gradient's std in float32
    jax.config.update("jax_enable_x64", False)
    try:
        d = Domain.create(32, 100.0, dtype="float32")
        noise = white_noise(d, 4)
        grads = {ad: jax.jit(jax.grad(_loss_fn(d, ad, steps=10, rich=False), argnums=(0, 1, 2)))(noise, 0.31, 0.81)
                 for ad in ("store", "adjoint")}
    finally:
        jax.config.update("jax_enable_x64", True)
    ref, adj = grads["store"], grads["adjoint"]
    rms = float(jnp.sqrt(jnp.mean((adj[0] - ref[0]) ** 2)) / jnp.std(ref[0]))
    assert rms < 2e-3, rms
    for i in (1, 2):
        assert abs(float(adj[i]) / float(ref[i]) - 1) < 2e-3


def _forward_then_back(d, steps):
    c = BASE
    g = growth_table(c, d.real_dtype)
    lin = linear_field(d, c, white_noise(d, 5))
    dx, p = lpt(d, c, lin, 0.02, 2, growth=g)
    st = fastpm(d, c, ForceSpec(), g)
    grid, _ = make_time_grid(c, 0.02, [1.0], steps, "a")
    s0 = st.init(dx, p, grid[0])
    s1 = integrate(st, s0, grid, autodiff="store")
    coeffs = st.coefficients(grid)
    a_prev = jnp.asarray(grid[:-1], d.real_dtype)

    def back(s, xs):
        c_i, a_p = xs
        r = st.reverse_pre(s, c_i)
        return st.reverse_post(r, pm_forces(d, r.dx, ForceSpec()), c_i, a_p), None

    s_back, _ = jax.lax.scan(back, s1, (coeffs, a_prev), reverse=True)
    disp = float(jnp.sqrt(jnp.mean((s1.dx - s0.dx) ** 2)))
    return (float(jnp.sqrt(jnp.mean((s_back.dx - s0.dx) ** 2))) / disp,
            float(jnp.sqrt(jnp.mean((s_back.p - s0.p) ** 2)) / jnp.sqrt(jnp.mean(s0.p**2))))


@pytest.mark.slow  # make test under 20 minutes: the adjoint's gradient equalities depend on this reversal
def test_reversibility_returns_the_initial_state():
    # 32^3 in 128 Mpc/h, a = 0.02 -> 1 -> 0.02 in 20 steps (non-linear at a = 1);
    # error in units of the rms distance travelled (dx) and of the initial momenta (p)
    ex, ep = _forward_then_back(Domain.create(32, 128.0, dtype="float64"), 20)
    assert ex < 1e-11 and ep < 1e-11, (ex, ep)  # measured 8e-15 and 8e-13
    jax.config.update("jax_enable_x64", False)
    try:
        ex32, ep32 = _forward_then_back(Domain.create(32, 128.0, dtype="float32"), 20)
    finally:
        jax.config.update("jax_enable_x64", True)
    # measured 2026-11-22 (jax 0.10.2, CPU): 5.2e-6 and 5.3e-4 (table in jaxpm/steppers/adjoint.py)
    assert ex32 < 5e-5 and ep32 < 5e-3, (ex32, ep32)


# The two memory tests read XLA's compiled memory on the CPU, as the issue asks, also when the suite runs on
# a GPU (JAXPM_TEST_ON_GPU): there they failed at these toy sizes on an H100 (2026-12-06; cause not read, the
# run was cut before its tracebacks; compiled for the CPU they pass there, H100 2026-12-07). The GPU's own numbers are bench_adjoint.py's at 512^3 (H100, 10 and
# 40 steps: the same 27.9 GiB).
def _on_cpu():
    return jax.default_device(jax.devices("cpu")[0])


def _temp_bytes(d, steps, autodiff):
    loss = _loss_fn(d, autodiff, steps=steps, rich=False)
    with _on_cpu():
        noise = white_noise(d, 0)
        compiled = jax.jit(jax.grad(loss)).lower(noise, 0.31, 0.81).compile()
    return compiled.memory_analysis().temp_size_in_bytes


@pytest.mark.slow  # make test under 20 minutes: test_adjoint_gradient_memory_against_the_forward_run stays
def test_adjoint_memory_does_not_grow_with_steps():
    d = Domain.create(16, 64.0, dtype="float64")
    m5, m40 = _temp_bytes(d, 5, "adjoint"), _temp_bytes(d, 40, "adjoint")
    assert abs(m40 / m5 - 1) < 0.10, (m5, m40)
    # the discriminating counterpart: checkpointed autodiff stores a state per step
    c5, c40 = _temp_bytes(d, 5, "checkpoint"), _temp_bytes(d, 40, "checkpoint")
    assert c40 > 1.5 * c5, (c5, c40)


def _compiled_bytes(fn, x):
    m = jax.jit(fn).lower(x).compile().memory_analysis()
    return m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes - m.alias_size_in_bytes


def test_adjoint_gradient_memory_against_the_forward_run():
    # benchmarks/bench_adjoint.py's problem at 32^3 (float32, 5 FastPM steps), XLA's compiled memory:
    # the adjoint gradient measured 1.55x the forward run on the CPU (jax 0.10.2, 2026-12-02, force and
    # force VJP fused; 2.39x before, 3.46x before the node-looped painting; 128^3: 1.54x). Issue target:
    # <= 2x (the H200 at 512^3: 1.83x).
    jax.config.update("jax_enable_x64", False)
    try:
        d = Domain.create(32, 32.0, dtype="float32")
        fwd = lambda noise: simulate(d, BASE, linear_field(d, BASE, noise), a_init=0.1, a_out=[1.0], steps=5,
                                     autodiff="adjoint")[0].dx
        with _on_cpu():
            noise = white_noise(d, 0)
            ratio = _compiled_bytes(jax.grad(lambda z: jnp.mean(fwd(z) ** 2)), noise) / _compiled_bytes(fwd, noise)
    finally:
        jax.config.update("jax_enable_x64", True)
    assert ratio < 1.8, ratio


def test_hand_written_force_vjp_equals_autodiff():
    for B, paint in ((1, "cic"), (2, "tsc"), (1, "ngp")):
        d = Domain.create(8, 40.0, B=B, dtype="float64")
        dx = jnp.asarray(np.random.default_rng(6).normal(0, 3, d.particles + (3,)))
        ct = jnp.asarray(np.random.default_rng(7).normal(size=d.particles + (3,)))
        spec = ForceSpec(paint=paint)
        f, vjp = jax.vjp(lambda x: pm_forces(d, x, spec), dx)
        f2, meshes = pm_forces_and_meshes(d, dx, spec)
        np.testing.assert_allclose(f, f2, rtol=1e-12, atol=1e-12)  # GPU scatter-adds are not bitwise reproducible
        np.testing.assert_allclose(pm_forces_vjp(d, dx, meshes, ct, spec), vjp(ct)[0], rtol=1e-12, atol=1e-12)
        # the fused force + VJP of the KDK adjoint (one scatter, one gather)
        f3, g3 = pm_forces_and_vjp(d, dx, ct, spec)
        np.testing.assert_allclose(f3, f, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(g3, vjp(ct)[0], rtol=1e-12, atol=1e-12)


def test_unknown_autodiff_is_rejected():
    d = Domain.create(8, 32.0)
    with pytest.raises(ConfigError, match="autodiff"):
        simulate(d, BASE, jnp.zeros(d.particles), autodiff="magic")


def test_bullfrog_adjoint_equals_autodiff_in_float64():
    # BullFrog's force sits at mid-step positions (DKD): the adjoint pipelines it differently from KDK
    d = Domain.create(16, 64.0, dtype="float64")
    noise = white_noise(d, 8)
    grads = {ad: jax.jit(jax.grad(_loss_fn(d, ad, stepper="bullfrog", rich=False), argnums=(0, 1, 2)))(noise, 0.31, 0.81)
             for ad in ("store", "adjoint")}
    ref, adj = grads["store"], grads["adjoint"]
    assert float(jnp.sqrt(jnp.mean((adj[0] - ref[0]) ** 2)) / jnp.std(ref[0])) < 1e-8
    for i in (1, 2):
        assert abs(float(adj[i]) / float(ref[i]) - 1) < 1e-8
