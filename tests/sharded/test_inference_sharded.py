"""The inference model on a sharded Domain (one chain's field split over devices): mock data, log-density
and its gradient equal the single-device values, and the compiled gradient keeps the field distributed."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxpm
from inference import fields
from inference.model import FieldModel, ModelSpec
from jaxpm.errors import ConfigError

N, BOX = 16, 80.0
TRUTH = dict(Omega_m=0.3, sigma8=0.8, b1=1.0, b2=0.3, bs2=-0.2, bn2=0.5)
COSMO_FIXED = {"Omega_m": 0.3, "sigma8": 0.8}  # the fast case: bias scalars free (cheaper to compile)


def make(pd, evolution="lpt", lpt_order=1, precond="kaiser_dyn", latent="real"):
    dev = jax.devices()[: pd[0] * pd[1]]
    d = jaxpm.Domain.create(N, BOX, dtype="float64", pdims=pd, devices=dev)
    return FieldModel(ModelSpec(domain=d, cosmology=jaxpm.Cosmology(), evolution=evolution, lpt_order=lpt_order,
                                precond=precond, los=2, latent=latent))


def rel(a, b):
    a, b = np.asarray(a), np.asarray(b)
    assert np.all(np.isfinite(a))
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def full_size_gathers(hlo):
    """Element counts of the all-gathers in a compiled program."""
    return [int(np.prod([int(v) for v in m.split(",") if v])) for m in re.findall(r"= \w+\[([\d,]*)\][^=]*? all-gather\(", hlo)]


def evaluate(m, fixed, mock):
    """Mock (or synthetic data without the forward model, to save its compilation), and log-density and
    gradient (pytree position) at a point off the truth."""
    if mock:
        data = jax.jit(lambda: m.mock(TRUTH, 3))()  # the single-device mock is eager otherwise (slow to dispatch)
    else:
        d = m.domain
        field = 0.8 * jaxpm.white_noise(d, 4)
        data = {"obs": 1.0 + 2.5 * jaxpm.white_noise(d, 5), "gxy_mesh": field, "init_mesh": field, "init_mesh_": field,
                "position_tree": m.tree_of_params(m.latent_scalars(TRUTH) | {"init_mesh_": field})}
    pos = m.tree_of_params(m.params_of_tree(data["position_tree"]), fixed)
    shift = jnp.array([0.3, -0.2, 0.1, 0.2, -0.1, 0.15])[6 - pos["scalars"].shape[0]:]
    pos = m.put_tree({"scalars": pos["scalars"] + shift, "field": pos["field"] + 0.3 * jaxpm.white_noise(m.domain, 11)})
    compiled = jax.jit(jax.value_and_grad(m.logdensity_tree_fn(data["obs"], fixed))).lower(pos).compile()
    val, grad = compiled(pos)
    out = {k: np.asarray(data[k]) for k in ("obs", "gxy_mesh", "init_mesh", "init_mesh_")}
    out.update(val=float(val), g_scalars=np.asarray(grad["scalars"]), g_field=np.asarray(grad["field"]),
               g_sharding=grad["field"].sharding, obs_sharding=data["obs"].sharding, hlo=compiled.as_text())
    return out


_REF = {}


def reference(fixed, mock, **kw):
    key = (tuple(sorted(kw.items())), fixed is None, mock)
    if key not in _REF:
        _REF[key] = evaluate(make((1, 1), **kw), fixed, mock)
    return _REF[key]


CASES = [
    pytest.param((2, 4), dict(lpt_order=1, precond="kaiser_dyn"), COSMO_FIXED, id="2x4-1lpt-kaiser_dyn-bias"),
    pytest.param((2, 4), dict(lpt_order=1, precond="kaiser_dyn"), None, id="2x4-1lpt-kaiser_dyn", marks=pytest.mark.slow),
    pytest.param((2, 4), dict(lpt_order=2, precond="kaiser_dyn"), None, id="2x4-2lpt-kaiser_dyn", marks=pytest.mark.slow),
    pytest.param((1, 8), dict(lpt_order=2, precond="fourier"), None, id="1x8-2lpt-fourier", marks=pytest.mark.slow),
    pytest.param((1, 8), dict(lpt_order=1, precond="kaiser_dyn"), None, id="1x8-1lpt-kaiser_dyn", marks=pytest.mark.slow),
    pytest.param((2, 2), dict(lpt_order=2, precond="kaiser_dyn"), None, id="2x2-2lpt-kaiser_dyn", marks=pytest.mark.slow),
]


# jax 0.11.2's CPU compiler (the GPU host's Python 3.12 image, 8 fake CPU devices) died with a segmentation
# fault compiling the fast case (2026-12-07; log in benchmarks/results/sharded_suite_gpu-host-cpu_jax0112_*):
# an XLA crash, which took the rest of the sharded suite with it. jax 0.10.2 (CI, Python 3.11) runs it.
_XLA_CPU_CRASH = jax.__version_info__[:2] >= (0, 11) and jax.default_backend() == "cpu"


@pytest.mark.skipif(_XLA_CPU_CRASH, reason="jax 0.11's CPU compiler segfaults on this program (2026-12-07)")
@pytest.mark.parametrize("pd, kw, fixed", CASES)
def test_mock_logdensity_and_gradient_equal_single_device(pd, kw, fixed):
    """Fast case: bias scalars free, synthetic data; slow cases: all six scalars free, at the mock data."""
    mock = fixed is None
    m = make(pd, **kw)
    ref, out = reference(fixed, mock, **kw), evaluate(m, fixed, mock)
    for key in ("obs", "gxy_mesh", "init_mesh", "init_mesh_"):
        assert rel(out[key], ref[key]) <= 1e-10, key
    assert abs(out["val"] - ref["val"]) <= 1e-10 * abs(ref["val"])
    assert len(out["g_scalars"]) == (6 if fixed is None else 4)
    for g, r in zip(out["g_scalars"], ref["g_scalars"]):  # each scalar's gradient, not only the largest
        assert abs(g - r) <= 1e-10 * max(abs(r), 1e-3), (g, r)
    assert rel(out["g_field"], ref["g_field"]) <= 1e-10
    # data and gradient stay split over the devices, and the program never gathers a field
    assert out["obs_sharding"].is_equivalent_to(m.domain.sharding("real"), 3)
    assert out["g_sharding"].is_equivalent_to(m.domain.sharding("real"), 3)
    gathered = full_size_gathers(out["hlo"])
    assert all(size < N**3 // m.domain.device_mesh.size // 8 for size in gathered), sorted(gathered)[-5:]
    assert "all-to-all" in out["hlo"] and "collective-permute" in out["hlo"]  # pencil FFTs and halo exchange
    # the model is not trivially linear: the bias and displacements matter
    assert not mock or np.std(ref["gxy_mesh"]) > 0.3
    print(pd, kw, fixed, "rel diffs: val", abs(out["val"] - ref["val"]) / abs(ref["val"]), "g_scalars",
          rel(out["g_scalars"], ref["g_scalars"]), "g_field", rel(out["g_field"], ref["g_field"]),
          "obs", rel(out["obs"], ref["obs"]), "gathers", sorted(gathered)[-3:])


def test_modes_latent_is_refused_on_a_distributed_domain():
    with pytest.raises(ConfigError, match="latent"):
        make((2, 4), latent="modes")
    d = make((2, 4)).domain
    with pytest.raises(ConfigError, match="latent"):
        fields.pack(d, jnp.zeros(d.particles))
    assert make((2, 4), latent=None).latent == "real" and make((1, 1), latent=None).latent == "modes"


@pytest.mark.slow
def test_cli_mock_on_a_sharded_domain(tmp_path):
    """``python -m inference mock --pdims 2,4``: the same data as the default config's model on one device."""
    from inference.cli import main
    from inference.config import InferConfig

    args = ["mock", "--particles", "16", "--box", "80", "--seed", "2", "--quiet"]
    assert main(args + ["--out", str(tmp_path / "two"), "--pdims", "2,4"]) == 0
    cfg = InferConfig.load(None, {"particles": 16, "box": 80.0, "seed": 2})
    one = cfg.model()
    assert not one.domain.distributed and cfg.pdims == (1, 1)
    ref = jax.jit(lambda: one.mock({k: float(v) for k, v in cfg.truth.items()}, 2))()
    for name in ("obs", "init_mesh", "gxy_mesh"):
        assert rel(np.load(tmp_path / "two" / f"{name}.npy"), ref[name]) <= 1e-10, name
    import json

    assert json.loads((tmp_path / "two" / "mock.json").read_text())["config"]["pdims"] == [2, 4]


@pytest.mark.slow
def test_vmapped_chains_from_kaiser_init_tree():
    """What the runner does with a sharded chain: Kaiser-init pytree positions for several chains (field
    sharded P(None, "x", "y")), log-density and gradient vmapped over the chains; equal to one device."""
    res = {}
    for pd in ((1, 1), (2, 4)):
        m = make(pd, precond="kaiser_dyn")
        obs = 1.0 + 2.5 * jaxpm.white_noise(m.domain, 5)
        init = jax.jit(lambda: m.kaiser_init_tree(jax.random.key(1), obs, 2, COSMO_FIXED))()
        val, grad = jax.jit(jax.vmap(jax.value_and_grad(m.logdensity_tree_fn(obs, COSMO_FIXED))))(init)
        res[pd] = [np.asarray(a) for a in (init["field"], init["scalars"], val, grad["scalars"], grad["field"])]
        if pd != (1, 1):
            assert init["field"].sharding.is_equivalent_to(m.domain.sharding("stack", 4), 4)
            assert grad["field"].sharding.is_equivalent_to(m.domain.sharding("stack", 4), 4)
            flat = m.kaiser_init(jax.random.key(1), obs, 2, COSMO_FIXED)
            assert rel(m.from_tree(init), flat) <= 1e-12  # the flat API (eager here, jitted above)
    np.testing.assert_array_equal(res[(2, 4)][1], res[(1, 1)][1])  # scalars at the fiducial point, y = 0
    for i in (0, 2, 3, 4):
        a, b = res[(2, 4)][i], res[(1, 1)][i]
        assert a.shape == b.shape and rel(a, b) <= 1e-10, i
