"""Chunked runs with restart checkpoints: a resumed run equals the uninterrupted one."""

import json
import subprocess
import sys

import jax
import numpy as np
import pytest

import jaxpm
from jaxpm import ConfigError
from jaxpm.restart import run_checkpointed

from helpers import REPO, subprocess_env


class Killed(Exception):
    pass


def _setup():
    d = jaxpm.Domain.create(16, 100.0, dtype="float64")
    c = jaxpm.Cosmology()
    return d, c, jaxpm.linear_field(d, c, jaxpm.white_noise(d, 1))


def test_resume_is_identical_and_matches_simulate(tmp_path):
    d, c, lin = _setup()
    kw = dict(a_init=0.1, a_out=[0.5, 1.0], steps=6, every=2)
    full = run_checkpointed(d, c, lin, directory=tmp_path / "a", **kw)

    def die(step):
        if step == 4:
            raise Killed

    with pytest.raises(Killed):  # the process "dies" right after writing the checkpoint at step 4
        run_checkpointed(d, c, lin, directory=tmp_path / "b", on_checkpoint=die, **kw)
    resumed = run_checkpointed(d, c, lin, directory=tmp_path / "b", resume=True, **kw)
    # bitwise on CPU; GPU scatter-adds (painting) add in a varying order, so there to rounding
    exact = jax.default_backend() == "cpu"
    for s, r in zip(full, resumed):
        assert s.a == r.a
        for a, b in ((s.dx, r.dx), (s.p, r.p)):
            if exact:
                np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
            else:
                np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=1e-10 * float(np.abs(b).max()))
    # and the chunked run is the same physics as one scan over all steps
    ref = jax.jit(lambda c, l: jaxpm.simulate(d, c, l, a_init=0.1, a_out=[0.5, 1.0], steps=6))(c, lin)
    for s, r in zip(full, ref):
        np.testing.assert_allclose(np.asarray(s.dx), np.asarray(r.dx), rtol=0, atol=1e-12 * float(np.abs(r.dx).max()))


def test_resume_refuses_another_run(tmp_path):
    d, c, lin = _setup()
    run_checkpointed(d, c, lin, directory=tmp_path / "a", a_init=0.1, steps=4, every=2, meta={"seed": 1})
    with pytest.raises(ConfigError, match="resume"):
        run_checkpointed(d, c, lin, directory=tmp_path / "a", a_init=0.1, steps=4, every=2, resume=True, meta={"seed": 2})
    with pytest.raises(ConfigError, match="resume"):
        run_checkpointed(d, c, lin, directory=tmp_path / "nothing", a_init=0.1, steps=4, every=2, resume=True)
    with pytest.raises(ConfigError, match="checkpoint_every"):
        run_checkpointed(d, c, lin, directory=tmp_path / "c", a_init=0.1, steps=4, every=0)


def test_cli_checkpoint_and_resume(tmp_path):
    env = subprocess_env()
    base = [sys.executable, "-m", "jaxpm", "simulate", "--particles", "16", "--box", "64", "--steps", "4",
            "--quiet", "--checkpoint-every", "2", "--distributed", "none"]
    run = lambda *extra: subprocess.run(base + list(extra), cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    first = run("--out", str(tmp_path / "run"))
    assert first.returncode == 0, first.stderr[-2000:]
    assert json.loads((tmp_path / "run" / "checkpoint" / "checkpoint.json").read_text())["meta"]["step"] == 2
    final = np.load(tmp_path / "run" / "delta_z0.000.npy")
    again = run("--out", str(tmp_path / "run"), "--resume")  # continues from step 2
    assert again.returncode == 0, again.stderr[-2000:]
    np.testing.assert_array_equal(np.load(tmp_path / "run" / "delta_z0.000.npy"), final)  # CPU subprocess: bitwise
    wrong = run("--out", str(tmp_path / "run"), "--resume", "--seed", "5")
    assert wrong.returncode != 0 and "resume" in wrong.stderr
