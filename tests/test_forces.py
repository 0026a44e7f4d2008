"""PM forces: a point mass against Newton's 1/r^2, momentum conservation, total mass."""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxpm import Domain, ForceSpec, density, pm_forces
from jaxpm.forces import force_from_density
from jaxpm.painting import paint, readout


@pytest.mark.parametrize("gradient, laplace", [("exact", "exact"), ("fd4", "fd2")])
def test_point_mass_force_is_newtonian_beyond_a_few_cells(gradient, laplace):
    n, box = 64, 64.0  # 1 Mpc/h cells
    d = Domain.create(n // 1, box, dtype="float64")
    src = jnp.array([[20.3, 31.7, 29.1]])
    m_cells = 1000.0
    rho = paint(d.mesh_shape, src, m_cells, "cic")  # integral of delta over volume = m_cells * V_cell
    spec = ForceSpec(gradient=gradient, laplace=laplace, compensate=False)
    fmesh = force_from_density(d, rho, spec)
    rng = np.random.default_rng(0)
    r = rng.uniform(4.0, 12.0, 400)
    u = rng.normal(size=(400, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    pts = np.asarray(src) + r[:, None] * u
    f = np.asarray(readout(fmesh, jnp.asarray(pts), "cic"))
    # attraction m/(4 pi r^2) plus the uniform background removed with k = 0: +m r/(3 V)
    V = box**3
    radial = np.sum(f * u, axis=1)
    expect = -m_cells / (4 * np.pi * r**2) + m_cells * r / (3 * V)
    rel = np.abs(radial / expect - 1)
    assert np.median(rel) < 0.01 and np.quantile(rel, 0.9) < 0.03, (np.median(rel), np.quantile(rel, 0.9))
    if gradient == "fd4":  # the exact i k kernel rings at the mesh Nyquist: a few outliers > 100 %
        assert rel.max() < 0.06
    tangential = np.linalg.norm(f - radial[:, None] * u, axis=1)
    assert np.median(tangential / np.abs(expect)) < 0.02


@pytest.mark.parametrize("paint_scheme", ["ngp", "cic", "tsc"])
@pytest.mark.parametrize("B", [1, 2])
def test_total_force_vanishes_and_mass_is_exact(paint_scheme, B):
    d = Domain.create(16, 50.0, B=B, dtype="float64")
    dx = jnp.asarray(np.random.default_rng(1).normal(0, 3.0, d.particles + (3,)))
    rho = density(d, dx, paint_scheme)
    assert abs(float(rho.sum()) - np.prod(d.mesh_shape)) < 1e-9  # mean density exactly 1
    f = pm_forces(d, dx, ForceSpec(paint=paint_scheme))
    # paint and read-out are adjoint and the gradient kernel is odd: momentum is conserved
    assert float(jnp.max(jnp.abs(f.sum(axis=(0, 1, 2))))) < 1e-10 * float(jnp.abs(f).sum())


def test_unperturbed_lattice_feels_no_force():
    for B in (1, 2, 3):
        d = Domain.create(8, 40.0, B=B, dtype="float64")
        f = pm_forces(d, jnp.zeros(d.particles + (3,)))
        assert float(jnp.max(jnp.abs(f))) < 1e-12
