"""Time stepping: exact linear growth (FastPM), convergence in the number of steps, snapshots, grids."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpm import Cosmology, Domain, density, linear_field_from_seed, lpt, simulate
from jaxpm.cosmology import growth_table
from jaxpm.errors import ConfigError
from jaxpm.observables import cross_correlation, power_spectrum
from jaxpm.simulation import make_time_grid


@pytest.fixture(scope="module")
def linear_box():
    d = Domain.create(64, 512.0)
    # Small amplitude: at sigma8 = 0.8 the per-realisation mode coupling at k ~ 0.04 h/Mpc in a
    # 512 Mpc/h box changes individual bins by up to 7 % (measured), which is physics, not stepping.
    c = Cosmology(sigma8=0.05)
    lin = linear_field_from_seed(d, c, 1)
    dx0, _ = lpt(d, c, lin, 0.1, 2)
    p_init = power_spectrum(density(d, dx0) - 1, d.box, compensate="cic")
    return d, c, lin, p_init


@pytest.mark.parametrize("stepper", ["fastpm", "bullfrog"])
@pytest.mark.parametrize("steps", [5, 10])
def test_linear_growth_is_exact_at_large_scales(linear_box, steps, stepper):
    # FastPM's and BullFrog's factors are exact for the Zel'dovich growing mode (tests/test_bullfrog.py)
    d, c, lin, p_init = linear_box
    g = growth_table(c, jnp.float32)
    snap = jax.jit(lambda l: simulate(d, c, l, a_init=0.1, a_out=[1.0], steps=steps, stepper=stepper)[0].dx)(lin)
    p_final = power_spectrum(density(d, snap) - 1, d.box, compensate="cic")
    sel = p_final.k < 0.05
    assert sel.sum() >= 3
    ratio = p_final.power[sel] / p_init.power[sel] / float(g.D1(1.0) / g.D1(0.1)) ** 2
    assert np.all(np.abs(ratio - 1) < 0.01), ratio


def test_plain_leapfrog_with_few_steps_is_not_growth_exact(linear_box):
    # the discriminating counterpart: the same 5 steps with plain leapfrog factors miss linear growth
    d, c, lin, p_init = linear_box
    g = growth_table(c, jnp.float32)
    snap = jax.jit(lambda l: simulate(d, c, l, a_init=0.1, a_out=[1.0], steps=5, stepper="leapfrog")[0].dx)(lin)
    p_final = power_spectrum(density(d, snap) - 1, d.box, compensate="cic")
    ratio = p_final.power[:3] / p_init.power[:3] / float(g.D1(1.0) / g.D1(0.1)) ** 2
    assert np.all(np.abs(ratio - 1) > 0.02), ratio


def test_ten_steps_correlate_with_hundred_steps():
    d = Domain.create(64, 128.0)
    c = Cosmology()
    lin = linear_field_from_seed(d, c, 0)
    fields = {}
    for steps in (10, 100):
        dx = jax.jit(lambda l: simulate(d, c, l, a_init=0.1, a_out=[1.0], steps=steps)[0].dx)(lin)
        fields[steps] = density(d, dx) - 1
    k, r = cross_correlation(fields[10], fields[100], d.box)
    sel = k <= d.k_nyquist / 2
    assert np.all(np.asarray(r)[sel] >= 0.99), np.asarray(r)[sel]
    # the field is non-linear: P(k) well above linear theory at k_Nyq / 2
    p = power_spectrum(fields[100], d.box, compensate="cic")
    kk = p.k[np.argmin(np.abs(p.k - d.k_nyquist / 2))]
    assert p.power[np.argmin(np.abs(p.k - kk))] > 1.5 * float(c.linear_power(jnp.asarray(kk)))


def test_steppers_agree_with_adaptive_solver():
    d = Domain.create(16, 64.0, dtype="float64")
    c = Cosmology()
    lin = linear_field_from_seed(d, c, 3)
    ref = simulate(d, c, lin, a_init=0.1, a_out=[0.6, 1.0], stepper="dopri5", rtol=1e-8, atol=1e-8)
    for stepper, steps, tol in (("fastpm", 200, 2e-3), ("leapfrog", 200, 5e-3), ("fastpm", 10, 0.05)):
        snaps = simulate(d, c, lin, a_init=0.1, a_out=[0.6, 1.0], steps=steps, stepper=stepper)
        for s, r in zip(snaps, ref):
            err = float(jnp.sqrt(jnp.mean((s.dx - r.dx) ** 2) / jnp.mean(r.dx**2)))
            assert err < tol, (stepper, steps, s.a, err)
            perr = float(jnp.sqrt(jnp.mean((s.p - r.p) ** 2) / jnp.mean(r.p**2)))
            assert perr < 2 * tol, (stepper, steps, s.a, perr)


def test_intermediate_snapshots_equal_a_run_that_stops_there():
    d = Domain.create(16, 64.0, dtype="float64")
    c = Cosmology()
    lin = linear_field_from_seed(d, c, 4)
    grid, idx = make_time_grid(c, 0.1, [0.5, 1.0], 4, "a")
    assert np.isclose(grid[idx[0]], 0.5) and grid[idx[1]] == 1.0 and len(grid) == 6  # 0.5 inserted
    both = simulate(d, c, lin, a_init=0.1, a_out=[0.5, 1.0], steps=4)
    half = simulate(d, c, lin, a_init=0.1, a_out=[0.5], a_grid=grid[: idx[0] + 1])
    np.testing.assert_allclose(both[0].dx, half[0].dx, rtol=0, atol=1e-12)
    np.testing.assert_allclose(both[0].p, half[0].p, rtol=0, atol=1e-12)
    assert not np.allclose(both[0].dx, both[1].dx)


def test_time_grids():
    c = Cosmology()
    g = growth_table(c)
    grid, _ = make_time_grid(c, 0.1, [1.0], 8, "loga")
    np.testing.assert_allclose(np.diff(np.log(grid)), np.log(10) / 8, rtol=1e-12)
    grid, _ = make_time_grid(c, 0.1, [1.0], 8, "growth")
    d1 = np.asarray(g.D1(jnp.asarray(grid)))
    np.testing.assert_allclose(np.diff(d1), (d1[-1] - d1[0]) / 8, rtol=1e-4)
    grid, idx = make_time_grid(c, 0.1, [0.325, 1.0], 4, "a")
    assert len(grid) == 5 and idx == [1, 4]  # an output already on the grid is not duplicated
    with pytest.raises(ConfigError, match="spacing"):
        make_time_grid(c, 0.1, [1.0], 4, "weekly")
    with pytest.raises(ConfigError, match="steps"):
        make_time_grid(c, 0.1, [1.0], 0, "a")


def test_simulate_rejects_bad_arguments():
    d = Domain.create(8, 32.0)
    c = Cosmology()
    lin = jnp.zeros(d.particles)
    with pytest.raises(ConfigError, match="stepper"):
        simulate(d, c, lin, stepper="rk9")
    with pytest.raises(ConfigError, match="a_out"):
        simulate(d, c, lin, a_init=0.5, a_out=[0.4])
