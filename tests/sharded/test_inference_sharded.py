"""The inference model on a sharded Domain (one chain's field split over devices): mock data, log-density
and its gradient equal the single-device values, and the compiled gradient keeps the field distributed."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxpm
from inference.model import FieldModel, ModelSpec
from jaxpm.errors import ConfigError

N, BOX = 16, 80.0
TRUTH = dict(Omega_m=0.3, sigma8=0.8, b1=1.0, b2=0.3, bs2=-0.2, bn2=0.5)


def make(pd, evolution="lpt", lpt_order=1, precond="kaiser_dyn", latent="real"):
    dev = jax.devices()[: pd[0] * pd[1]]
    d = jaxpm.Domain.create(N, BOX, dtype="float64", pdims=pd, devices=dev)
    return FieldModel(ModelSpec(domain=d, cosmology=jaxpm.Cosmology(), evolution=evolution, lpt_order=lpt_order,
                                precond=precond, los=2, latent=latent))


def rel(a, b):
    a, b = np.asarray(a), np.asarray(b)
    assert np.all(np.isfinite(a))
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def evaluate(m):
    """Mock, and log-density and gradient (pytree position) at a point off the truth."""
    data = m.mock(TRUTH, 3)
    pos = data["position_tree"]
    pos = {"scalars": pos["scalars"] + jnp.array([0.3, -0.2, 0.1, 0.2, -0.1, 0.15]),
           "field": pos["field"] + 0.3 * jaxpm.white_noise(m.domain, 11)}
    ld = m.logdensity_tree_fn(data["obs"])
    val, grad = jax.jit(jax.value_and_grad(ld))(m.put_tree(pos))
    out = {k: np.asarray(data[k]) for k in ("obs", "gxy_mesh", "init_mesh", "init_mesh_")}
    out.update(val=float(val), g_scalars=np.asarray(grad["scalars"]), g_field=np.asarray(grad["field"]),
               g_sharding=grad["field"].sharding, obs_sharding=data["obs"].sharding)
    return out


_REF = {}


def reference(**kw):
    key = tuple(sorted(kw.items()))
    if key not in _REF:
        _REF[key] = evaluate(make((1, 1), **kw))
    return _REF[key]


CASES = [
    pytest.param((2, 4), dict(lpt_order=1, precond="kaiser_dyn"), id="2x4-1lpt-kaiser_dyn"),
    pytest.param((1, 8), dict(lpt_order=2, precond="fourier"), id="1x8-2lpt-fourier"),
    pytest.param((2, 4), dict(lpt_order=2, precond="kaiser_dyn"), id="2x4-2lpt-kaiser_dyn", marks=pytest.mark.slow),
    pytest.param((1, 8), dict(lpt_order=1, precond="kaiser_dyn"), id="1x8-1lpt-kaiser_dyn", marks=pytest.mark.slow),
    pytest.param((2, 4), dict(lpt_order=1, precond="fourier"), id="2x4-1lpt-fourier", marks=pytest.mark.slow),
    pytest.param((2, 2), dict(lpt_order=2, precond="kaiser_dyn"), id="2x2-2lpt-kaiser_dyn", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("pd, kw", CASES)
def test_mock_logdensity_and_gradient_equal_single_device(pd, kw):
    m = make(pd, **kw)
    ref, out = reference(**kw), evaluate(m)
    for key in ("obs", "gxy_mesh", "init_mesh", "init_mesh_"):
        assert rel(out[key], ref[key]) <= 1e-10, key
    assert abs(out["val"] - ref["val"]) <= 1e-10 * abs(ref["val"])
    assert rel(out["g_scalars"], ref["g_scalars"]) <= 1e-10
    for i in range(6):  # each scalar's gradient, not only the largest
        assert abs(out["g_scalars"][i] - ref["g_scalars"][i]) <= 1e-10 * max(abs(ref["g_scalars"][i]), 1e-3)
    assert rel(out["g_field"], ref["g_field"]) <= 1e-10
    # inputs and gradient stay split over the devices
    assert out["obs_sharding"].is_equivalent_to(m.domain.sharding("real"), 3)
    assert out["g_sharding"].is_equivalent_to(m.domain.sharding("real"), 3)
    # the model is not trivially linear: the bias and displacements matter
    assert np.std(ref["gxy_mesh"]) > 0.3
