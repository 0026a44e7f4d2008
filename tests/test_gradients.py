"""Gradients of a whole run (2LPT + FastPM) against central finite differences in float64."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpm import Cosmology, Domain, ForceSpec, density, linear_field, simulate, white_noise

D = Domain.create(16, 80.0, dtype="float64")
BASE = Cosmology()
W_MESH = jnp.asarray(np.random.default_rng(0).normal(size=D.mesh_shape))
W_P = jnp.asarray(np.random.default_rng(1).normal(size=D.particles + (3,)))


def _loss(noise, om, s8, paint, stepper="fastpm"):
    c = BASE.replace(Omega_m=om, sigma8=s8)
    lin = linear_field(D, c, noise)
    snaps = simulate(D, c, lin, a_init=0.1, a_out=[0.5, 1.0], steps=3, stepper=stepper, force=ForceSpec(paint=paint))
    rho = density(D, snaps[-1].dx, paint)
    return jnp.sum(W_MESH * rho) + jnp.sum(W_P * snaps[0].p) * 1e-2


@pytest.mark.parametrize("paint, stepper", [("tsc", "fastpm"),  # the other two with -m slow (make test under 20 minutes)
                                            pytest.param("cic", "fastpm", marks=pytest.mark.slow),
                                            pytest.param("tsc", "leapfrog", marks=pytest.mark.slow)])
def test_gradient_matches_central_finite_differences(paint, stepper):
    noise = white_noise(D, 7)
    args = (noise, 0.31, 0.81)
    f = jax.jit(lambda n, om, s8: _loss(n, om, s8, paint, stepper))
    g_noise, g_om, g_s8 = jax.jit(jax.grad(lambda n, om, s8: _loss(n, om, s8, paint, stepper), argnums=(0, 1, 2)))(*args)
    # the initial field: directional derivatives along random directions. CIC is only piecewise
    # smooth (kinks at the nodes): a step small enough that no particle crosses a node is needed.
    rng = np.random.default_rng(2)
    for _ in range(2):
        v = jnp.asarray(rng.normal(size=D.particles))
        eps = 1e-5 if paint == "tsc" else 1e-8
        fd = (f(noise + eps * v, 0.31, 0.81) - f(noise - eps * v, 0.31, 0.81)) / (2 * eps)
        assert abs(float(jnp.vdot(g_noise, v)) / float(fd) - 1) < 1e-4
    # cosmological parameters
    eps = 1e-6
    fd_om = (f(noise, 0.31 + eps, 0.81) - f(noise, 0.31 - eps, 0.81)) / (2 * eps)
    fd_s8 = (f(noise, 0.31, 0.81 + eps) - f(noise, 0.31, 0.81 - eps)) / (2 * eps)
    assert abs(float(g_om) / float(fd_om) - 1) < 1e-4, (g_om, fd_om)
    assert abs(float(g_s8) / float(fd_s8) - 1) < 1e-4, (g_s8, fd_s8)
