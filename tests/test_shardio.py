"""Sharded files and checkpoints on one process (the multi-process cases are in test_multiprocess.py):
round trips against known arrays, refusals, interrupted saves, and a simulation restarted from a
checkpoint at step k equal to the uninterrupted run."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpm import shardio
from jaxpm.errors import ConfigError


def test_round_trip_numpy_and_jax(tmp_path):
    ref = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4) - 7.5
    shardio.save_sharded(tmp_path / "a.npy", ref)
    shardio.save_sharded(tmp_path / "b.npy", jnp.asarray(ref))
    shardio.save_sharded(tmp_path / "s.npy", jnp.asarray(3.5))
    for name in ("a.npy", "b.npy"):
        got = np.load(tmp_path / name)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, ref)
        back = shardio.load_sharded(tmp_path / name)
        np.testing.assert_array_equal(np.asarray(back), ref)
    assert float(np.load(tmp_path / "s.npy")) == 3.5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy", "b.npy", "s.npy"]  # no temporary left


def test_refusals_name_the_parameter(tmp_path):
    path = tmp_path / "a.npy"
    shardio.save_sharded(path, np.ones(3))
    with pytest.raises(ConfigError, match="overwrite"):
        shardio.save_sharded(path, np.zeros(3))
    np.testing.assert_array_equal(np.load(path), np.ones(3))  # nothing already written is lost
    shardio.save_sharded(path, np.zeros(3), overwrite=True)
    np.testing.assert_array_equal(np.load(path), np.zeros(3))
    with pytest.raises(ConfigError, match="path"):
        shardio.save_sharded(tmp_path / "a.bin", np.ones(3))
    with pytest.raises(ConfigError, match="dtype"):
        shardio.save_sharded(tmp_path / "bf.npy", jnp.ones(3, jnp.bfloat16))
    with pytest.raises(ConfigError, match=r"shape \(4,\)"):
        shardio.load_sharded(path, None, shape=(4,))
    with pytest.raises(ConfigError, match="checkpoint"):
        shardio.load_checkpoint(tmp_path / "nothing")


def test_checkpoint_interrupted_save_keeps_the_previous_one(tmp_path, monkeypatch):
    ck = tmp_path / "ck"
    first = {"dx": jnp.arange(6.0).reshape(2, 3), "p": jnp.ones((2, 3)), "a": jnp.asarray(0.5)}
    shardio.save_checkpoint(ck, first, {"step": 1})

    calls = {"n": 0}
    real = shardio.save_sharded

    def dying(path, array, **kw):  # the job is killed while writing the second leaf
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("killed")
        return real(path, array, **kw)

    monkeypatch.setattr(shardio, "save_sharded", dying)
    with pytest.raises(KeyboardInterrupt):
        shardio.save_checkpoint(ck, jax.tree_util.tree_map(lambda v: v + 100, first), {"step": 2})
    monkeypatch.setattr(shardio, "save_sharded", real)
    tree, meta = shardio.load_checkpoint(ck, first)
    assert meta == {"step": 1}
    for key in first:
        np.testing.assert_array_equal(np.asarray(tree[key]), np.asarray(first[key]))
    # the next save cleans the half-written one and replaces the checkpoint
    shardio.save_checkpoint(ck, jax.tree_util.tree_map(lambda v: v * 2, first), {"step": 3})
    tree, meta = shardio.load_checkpoint(ck)  # like=None: numpy arrays by leaf name
    assert meta == {"step": 3} and sorted(tree) == ["['a']", "['dx']", "['p']"]
    np.testing.assert_array_equal(tree["['dx']"], 2 * np.arange(6.0).reshape(2, 3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]
    info = json.loads((ck / shardio.CHECKPOINT_FILE).read_text())
    assert info["leaves"][1] == {"name": "['dx']", "file": "0001_dx.npy", "shape": [2, 3], "dtype": "float64"}
    assert "jax" in info["versions"]
    # a crash between the two renames of a swap leaves only <dir>.old: it is still found
    (ck).rename(tmp_path / "ck.old")
    assert shardio.checkpoint_exists(ck)
    assert shardio.load_checkpoint(ck)[1] == {"step": 3}
    # a tree that does not match is refused, naming the leaves
    with pytest.raises(ConfigError, match="like"):
        shardio.load_checkpoint(ck, {"dx": first["dx"]})


def test_restart_from_checkpoint_equals_uninterrupted_run(tmp_path):
    """FastPM, 16^3, float32: run k = 3 of 6 steps, checkpoint the state, reload it, finish; the
    result equals the uninterrupted 6-step run (bitwise: the same compiled step on the same data)."""
    from jaxpm import Cosmology, Domain, linear_field, white_noise
    from jaxpm.cosmology import growth_table
    from jaxpm.lpt import lpt
    from jaxpm.simulation import make_time_grid
    from jaxpm.steppers import STEPPERS, integrate

    d, c = Domain.create(particles=16, box=64.0), Cosmology()
    g = growth_table(c, d.real_dtype)
    grid, _ = make_time_grid(c, 0.1, [1.0], 6, "a")
    st = STEPPERS["fastpm"](d, c, growth=g)
    dx, p = lpt(d, c, linear_field(d, c, white_noise(d, 0)), 0.1, 2, growth=g)
    state0 = st.init(dx, p, grid[0])

    full = integrate(st, state0, grid)
    half = integrate(st, state0, grid[:4])
    shardio.save_checkpoint(tmp_path / "ck", half._asdict(), {"step": 3, "a_grid": list(grid)})
    loaded, meta = shardio.load_checkpoint(tmp_path / "ck", half._asdict())
    resumed = integrate(st, type(half)(**loaded), np.asarray(meta["a_grid"])[3:])
    assert meta["step"] == 3
    assert resumed.dx.dtype == jnp.float32
    if jax.default_backend() == "gpu" and "xla_gpu_deterministic_ops=true" not in os.environ.get("XLA_FLAGS", ""):
        # GPU painting sums with atomic adds in no fixed order: two runs of one program differ by rounding
        # (measured: the bitwise check failed on an H200; XLA's switch for ordered scatters,
        # --xla_gpu_deterministic_ops=true, is untested here; README, Restart)
        moved = float(jnp.abs(full.dx - state0.dx).max())
        assert float(jnp.abs(resumed.dx - full.dx).max()) < 1e-5 * moved
        assert float(jnp.abs(resumed.p - full.p).max()) < 1e-5 * float(jnp.abs(full.p).max())
    else:
        np.testing.assert_array_equal(np.asarray(resumed.dx), np.asarray(full.dx))  # measured on a CPU: bitwise equal
        np.testing.assert_array_equal(np.asarray(resumed.p), np.asarray(full.p))
    assert float(jnp.abs(full.dx - state0.dx).max()) > 0.1  # the particles did move between the halves
