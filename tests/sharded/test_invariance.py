"""Decomposition invariance of the whole chain (white noise -> linear field -> 2LPT -> FastPM ->
density) and of its gradients, and a compiled program without full-size all-gathers."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxpm

PDIMS = [(1, 1), (1, 8), (8, 1), (2, 4), (4, 2), (2, 2)]
N, BOX = 16, 160.0


_CHAINS = {}


def chain(pd, dtype, autodiff="checkpoint"):
    """Initial field, final density and the gradient of a density loss w.r.t. the noise and cosmology, and
    the compiled program's HLO text, once per (decomposition, dtype, autodiff) in this process: the
    all-gather test reads the program the invariance test ran instead of compiling one of its own."""
    if (pd, dtype, autodiff) not in _CHAINS:
        _CHAINS[pd, dtype, autodiff] = _chain(domain(pd, dtype), autodiff)
    return _CHAINS[pd, dtype, autodiff]


def _chain(d, autodiff):

    def loss(noise, cosmo):
        lin = jaxpm.linear_field(d, cosmo, noise)
        snap, = jaxpm.simulate(d, cosmo, lin, a_init=0.2, a_out=[1.0], steps=1, autodiff=autodiff)
        rho = jaxpm.density(d, snap.dx)
        # positive weights: a loss whose gradient is not a cancelling sum, so float32 rounding of the
        # (differently ordered) sums is not amplified by cancellation (a cos-weighted loss gave 1.6e-5)
        return jnp.sum(rho**2 * (1.5 + jnp.cos(jnp.arange(rho.shape[0])))[:, None, None]), (lin, rho)

    args = (jaxpm.white_noise(d, 7), jaxpm.Cosmology())
    f = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)).lower(*args).compile()
    (_, (lin, rho)), (g_noise, g_cosmo) = f(*args)
    return {"lin": np.asarray(lin), "rho": np.asarray(rho), "g_noise": np.asarray(g_noise),
            "g_Om": float(g_cosmo.Omega_m), "g_s8": float(g_cosmo.sigma8), "hlo": f.as_text()}


def domain(pd, dtype):
    return jaxpm.Domain.create(N, BOX, dtype=dtype, pdims=pd, devices=jax.devices()[: pd[0] * pd[1]],
                               **({} if pd == (1, 1) else {"halo": 1, "capacity": 0.5}))


def rel(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(b)))


# every decomposition in float64 and float32; the default suite runs one slab and the (2, 4) pencil in
# float64, the rest with -m slow (make test-slow), to keep make test under 20 minutes (each case is one
# 8-device compilation, 45-80 s on one core; a float32 simulation over 8 devices stays in the default
# suite as tests/test_multiprocess.py's two-process CLI run, held to one process)
CASES = ([pytest.param(pd, "float64", 1e-10, marks=() if pd in ((1, 8), (2, 4)) else pytest.mark.slow)
          for pd in PDIMS[1:]]
         + [pytest.param(pd, "float32", 1e-5, marks=pytest.mark.slow) for pd in PDIMS[1:]])


@pytest.mark.parametrize("pd, dtype, tol", CASES)
def test_same_fields_and_gradients_on_every_decomposition(pd, dtype, tol):
    ref, out = chain((1, 1), dtype), chain(pd, dtype)
    assert np.array_equal(out["lin"], ref["lin"]) or rel(out["lin"], ref["lin"]) < tol
    for key in ("rho", "g_noise"):
        assert rel(out[key], ref[key]) < tol, key
    for key in ("g_Om", "g_s8"):
        assert abs(out[key] - ref[key]) <= tol * abs(ref[key]), key
    # the density really moved particles by more than the halo of one cell somewhere
    assert np.std(ref["rho"]) > 0.3


def test_adjoint_is_decomposition_invariant():
    ref, out = chain((1, 1), "float64"), chain((2, 4), "float64", autodiff="adjoint")
    assert rel(out["g_noise"], ref["g_noise"]) < 1e-10
    assert abs(out["g_Om"] - ref["g_Om"]) < 1e-10 * abs(ref["g_Om"])


def test_compiled_gradient_has_no_full_size_all_gather():
    hlo = chain((2, 4), "float64")["hlo"]  # the (2, 4) float64 invariance case's program: ICs, 2LPT, a step, density
    gathered = [int(np.prod([int(v) for v in m.split(",") if v])) for m in
                re.findall(r"= \w+\[([\d,]*)\][^=]*? all-gather\(", hlo)]
    local_block = N**3 // 8
    assert all(size < local_block // 8 for size in gathered), sorted(gathered)[-5:]
    assert "all-to-all" in hlo and "collective-permute" in hlo  # the FFT transposes and the halos
