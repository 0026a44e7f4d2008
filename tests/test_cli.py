"""The command line, run as a user runs it: ``python -m jaxpm ...`` in a subprocess.

Physics references are independent of jaxpm: linear P(k) and growth from jax_cosmo, spectra of saved
fields from our own numpy FFT.
"""

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from helpers import mode_power, subprocess_env

jax.config.update("jax_enable_x64", True)  # also done by conftest; the references run in float64

SMALL = ["--particles", "16", "--box", "64", "--steps", "2"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def cli(args, cwd, timeout=300):
    """Run ``python -m jaxpm ARGS`` in ``cwd``; returns (CompletedProcess, wall seconds)."""
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "jaxpm", *map(str, args)], cwd=cwd, env=subprocess_env(),
                         capture_output=True, text=True, timeout=timeout)
    return out, time.perf_counter() - t


def one_line_error(out, name):
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert name in lines[0], lines[0]
    assert "Traceback" not in out.stderr
    return lines[0]


# ------------------------------------------------------------------------------------------------
# independent references
# ------------------------------------------------------------------------------------------------


def jc_cosmology(c):
    import jax_cosmo as jc

    return jc.Cosmology(Omega_c=c["Omega_m"] - c["Omega_b"], Omega_b=c["Omega_b"], h=c["h"], n_s=c["n_s"],
                        sigma8=c["sigma8"], Omega_k=0.0, w0=c["w0"], wa=c["wa"])


def jc_linear(c, k, a=1.0):
    import jax_cosmo as jc

    k = np.asarray(k, float)
    uk, inv = np.unique(k.ravel(), return_inverse=True)
    pk = np.asarray(jc.power.linear_matter_power(jc_cosmology(c), uk, a=a)).ravel()
    return pk[inv].reshape(k.shape)


def check_ic_amplitude(ic, box, cosmo):
    """The saved linear field (a = 1) samples jax_cosmo's P(k): per mode <P_ic / P_lin> = 1 with
    sigma = 1/sqrt(M/2) (M/2 independent exponential variates), over 0 < |k| < k_Nyquist."""
    K, P = mode_power(ic, box)
    n = ic.shape[0]
    m = (K > 0) & (K < np.pi * n / box)
    ratio = P[m] / jc_linear(cosmo, K[m])
    sigma = 1 / np.sqrt(m.sum() / 2)
    assert abs(ratio.mean() - 1) < 4 * sigma, (ratio.mean(), sigma)


def bin_average(values, K, edges):
    idx = np.digitize(K.ravel(), edges) - 1
    ok = (idx >= 0) & (idx < len(edges) - 1)
    cnt = np.bincount(idx[ok], minlength=len(edges) - 1)
    s = np.bincount(idx[ok], values.ravel()[ok], minlength=len(edges) - 1)
    return s[cnt > 0] / cnt[cnt > 0]


# ------------------------------------------------------------------------------------------------
# the default run
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("default")
    out, wall = cli(["simulate", "--out", "run"], cwd)
    assert out.returncode == 0, out.stderr[-3000:]
    d = cwd / "run"
    return {"dir": d, "cwd": cwd, "proc": out, "wall": wall, "summary": json.loads((d / "summary.json").read_text())}


def test_default_run_outputs(default_run):
    assert default_run["wall"] < 120, default_run["wall"]
    d, s = default_run["dir"], default_run["summary"]
    assert Path(default_run["proc"].stdout.strip().splitlines()[-1]) == Path("run")
    assert sorted(p.name for p in d.iterdir()) == ["delta_z0.000.npy", "figure.png", "ic_linear.npy", "summary.json"]
    for key in ("config", "versions", "device", "timings", "outputs", "cosmology"):
        assert key in s
    assert len(s["outputs"]) == 1
    o = s["outputs"][0]
    assert {"a", "z", "file", "k", "pk"} <= set(o)
    assert o["a"] == pytest.approx(1.0) and o["z"] == pytest.approx(0.0, abs=1e-12)
    assert o["file"] == "delta_z0.000.npy"
    assert len(o["k"]) == len(o["pk"]) > 20 and np.all(np.diff(o["k"]) > 0)
    assert s["versions"]["jax"] == jax.__version__
    assert s["timings"]["total_s"] > 0
    ic = np.load(d / "ic_linear.npy")
    delta = np.load(d / "delta_z0.000.npy")
    assert ic.shape == (64, 64, 64) and ic.dtype == np.float32
    assert delta.shape == (64, 64, 64) and delta.dtype == np.float32
    # a density contrast: mean zero, every cell at least empty (delta >= -1)
    assert abs(delta.mean()) < 1e-5 and delta.min() >= -1 - 1e-6 and delta.std() > 1
    assert (d / "figure.png").read_bytes()[:8] == PNG_MAGIC


def test_default_run_progress_lines(default_run):
    err = default_run["proc"].stderr
    lines = re.split(r"[\r\n]+", err)
    for step in range(1, 11):
        hits = [ln for ln in lines if re.match(rf"^step\s+{step}/10\b", ln)]
        assert len(hits) == 1, (step, err)
        assert re.search(r"left ~\s*[\d.]+ s", hits[0]), hits[0]
    # steps run forward in a, ending at a = 1
    a_vals = [float(m) for m in re.findall(r"^step\s+\d+/10\s+a = ([\d.]+)", err, flags=re.M)]
    assert len(a_vals) == 10 and np.all(np.diff(a_vals) > 0) and a_vals[-1] == pytest.approx(1.0)


def test_default_run_config_is_the_default(default_run):
    c = default_run["summary"]["config"]
    want = {"particles": 64, "box": 128.0, "B": 1, "steps": 10, "a_init": 0.1, "z": [0.0], "seed": 0,
            "paint": "cic", "dtype": "float32", "stepper": "fastpm", "lpt_order": 2}
    assert {k: c[k] for k in want} == want
    cos = default_run["summary"]["cosmology"]
    assert (cos["Omega_m"], cos["Omega_b"], cos["h"], cos["n_s"], cos["sigma8"]) == (0.3111, 0.049, 0.6766, 0.9665, 0.8102)


def test_default_run_physics_against_jax_cosmo(default_run):
    s, d = default_run["summary"], default_run["dir"]
    cosmo = s["cosmology"]
    o = s["outputs"][0]
    k, pk, nm = (np.asarray(o[x], float) for x in ("k", "pk", "n_modes"))

    # the initial conditions sample the linear spectrum (per-mode average, sigma ~ 0.4%)
    check_ic_amplitude(np.load(d / "ic_linear.npy"), 128.0, cosmo)

    # linear theory averaged over the lattice modes of each shell (not at the shell's mean k)
    K, _ = mode_power(np.zeros((64, 64, 64)), 128.0)
    kf = 2 * np.pi / 128.0
    edges = (np.arange(32) + 0.5) * kf
    plin = bin_average(jc_linear(cosmo, np.where(K > 0, K, 1.0)), K, edges)[: len(k)]
    # lowest two shells (|k| <= sqrt(6) k_F = 0.12 h/Mpc): 80 modes, i.e. 40 independent, so cosmic
    # variance alone is sqrt(1/40) = 16%; 30% is ~2 sigma (seed 0 is fixed, so this is deterministic)
    low = k < 0.12
    assert low.sum() == 2 and nm[low].sum() == 80
    r_low = np.sum(pk[low] * nm[low]) / np.sum(plin[low] * nm[low])
    assert abs(r_low - 1) < 0.3, r_low
    # around k = 1 h/Mpc non-linear growth lifts P well above linear theory (halofit: x ~4)
    mid = (k > 0.8) & (k < 1.2)
    r_mid = np.sum(pk[mid] * nm[mid]) / np.sum(plin[mid] * nm[mid])
    assert r_mid > 1.5, r_mid


def test_power_command_reproduces_summary(default_run, tmp_path):
    d, s = default_run["dir"], default_run["summary"]
    table = tmp_path / "pk.txt"
    args = ["power", d / "delta_z0.000.npy", "--box", "128", "--compensate", "cic", "--out", table]
    out, _ = cli(args, tmp_path)
    assert out.returncode == 0, out.stderr
    data = np.loadtxt(table)
    o = s["outputs"][0]
    np.testing.assert_allclose(data[:, 0], o["k"], rtol=1e-5)
    np.testing.assert_allclose(data[:, 1], o["pk"], rtol=1e-5)
    np.testing.assert_allclose(data[:, 2], o["n_modes"], rtol=0)
    printed = np.array([[float(v) for v in ln.split()] for ln in out.stdout.splitlines() if ln and not ln.startswith("#")])
    np.testing.assert_allclose(printed, data, rtol=1e-6)
    # an existing table is not replaced without --overwrite
    before = table.read_bytes()
    bad, _ = cli(args, tmp_path)
    one_line_error(bad, "out")
    assert table.read_bytes() == before
    ok, _ = cli(args + ["--overwrite"], tmp_path)
    assert ok.returncode == 0, ok.stderr
    # multipoles along an axis: the monopole equals P(k)
    out, _ = cli(["power", d / "delta_z0.000.npy", "--box", "128", "--compensate", "cic", "--los", "2",
                  "--out", tmp_path / "pl.txt"], tmp_path)
    assert out.returncode == 0, out.stderr
    pl = np.loadtxt(tmp_path / "pl.txt")
    assert pl.shape == (len(o["k"]), 5)
    np.testing.assert_allclose(pl[:, 1], o["pk"], rtol=1e-5)


def test_power_command_bad_input(tmp_path):
    np.save(tmp_path / "flat.npy", np.zeros((8, 8), np.float32))
    out, _ = cli(["power", "flat.npy", "--box", "10"], tmp_path)
    one_line_error(out, "field")
    out, _ = cli(["power", "missing.npy", "--box", "10"], tmp_path)
    one_line_error(out, "field")
    np.save(tmp_path / "cube.npy", np.zeros((8, 8, 8), np.float32))
    out, _ = cli(["power", "cube.npy", "--box", "-3"], tmp_path)
    one_line_error(out, "box")
    assert not (tmp_path / "cube_pk.txt").exists()


# ------------------------------------------------------------------------------------------------
# output folders
# ------------------------------------------------------------------------------------------------


def test_runs_without_out_get_distinct_folders(tmp_path):
    dirs = []
    for _ in range(2):
        out, _ = cli(["simulate", *SMALL, "--quiet"], tmp_path)
        assert out.returncode == 0, out.stderr
        dirs.append(tmp_path / out.stdout.strip().splitlines()[-1])
    assert dirs[0] != dirs[1]
    runs = sorted((tmp_path / "runs").iterdir())
    assert sorted(dirs) == runs
    for d in dirs:
        s = json.loads((d / "summary.json").read_text())
        assert s["config"]["particles"] == 16
        assert np.load(d / "delta_z0.000.npy").shape == (16, 16, 16)


def test_existing_out_needs_overwrite(tmp_path):
    out_dir = tmp_path / "taken"
    out_dir.mkdir()
    keep = out_dir / "notes.txt"
    keep.write_text("precious")
    out, wall = cli(["simulate", *SMALL, "--out", "taken"], tmp_path)
    one_line_error(out, "out")
    assert wall < 15
    assert sorted(p.name for p in out_dir.iterdir()) == ["notes.txt"] and keep.read_text() == "precious"
    out, _ = cli(["simulate", *SMALL, "--out", "taken", "--overwrite", "--quiet"], tmp_path)
    assert out.returncode == 0, out.stderr
    assert (out_dir / "summary.json").is_file() and keep.read_text() == "precious"
    # a file in the way is refused too
    (tmp_path / "afile").write_text("x")
    out, _ = cli(["simulate", *SMALL, "--out", "afile"], tmp_path)
    one_line_error(out, "out")


def test_no_fields_writes_summary_and_figure_only(tmp_path):
    out, _ = cli(["simulate", *SMALL, "--out", "nf", "--no-fields", "--quiet"], tmp_path)
    assert out.returncode == 0, out.stderr
    names = sorted(p.name for p in (tmp_path / "nf").iterdir())
    assert names == ["figure.png", "summary.json"]
    s = json.loads((tmp_path / "nf" / "summary.json").read_text())
    assert s["outputs"][0]["file"] is None and len(s["outputs"][0]["pk"]) > 3
    assert (tmp_path / "nf" / "figure.png").read_bytes()[:8] == PNG_MAGIC
    assert "step" not in out.stderr and "jaxpm:" not in out.stderr  # --quiet: no progress lines


# ------------------------------------------------------------------------------------------------
# a TOML config with two outputs
# ------------------------------------------------------------------------------------------------


def test_config_file_run(tmp_path):
    (tmp_path / "run.toml").write_text(
        "particles = 16\nbox = 64\nsteps = 3\n"
        'z = "1,0"\n'
        'seed = 3\nstepper = "leapfrog"\nlpt_order = 1\n'
        "[cosmology]\nsigma8 = 0.7\n"
    )
    out, _ = cli(["simulate", "--config", "run.toml", "--out", "cfg"], tmp_path)
    assert out.returncode == 0, out.stderr
    d = tmp_path / "cfg"
    s = json.loads((d / "summary.json").read_text())
    c = s["config"]
    assert (c["particles"], c["box"], c["steps"], c["seed"], c["stepper"], c["lpt_order"], c["sigma8"]) == \
        (16, 64, 3, 3, "leapfrog", 1, 0.7)
    assert sorted(c["z"]) == [0.0, 1.0] and s["cosmology"]["sigma8"] == 0.7
    assert [o["file"] for o in s["outputs"]] == ["delta_z1.000.npy", "delta_z0.000.npy"]
    assert [o["z"] for o in s["outputs"]] == pytest.approx([1.0, 0.0], abs=1e-12)
    for o in s["outputs"]:
        assert np.load(d / o["file"]).shape == (16, 16, 16)
    # 3 base steps plus the z = 1 boundary; the progress counter shows the total
    assert re.search(r"^step\s+\d+/(3|4)\b", out.stderr, flags=re.M), out.stderr

    # sigma8 = 0.7 from the [cosmology] table reached the initial conditions (0.7^2 vs 0.81^2: -25%)
    check_ic_amplitude(np.load(d / "ic_linear.npy"), 64.0, s["cosmology"])

    # same realisation at two times: the lowest shell grows as (D(a=0.5) / D(1))^2 of jax_cosmo
    import jax_cosmo as jc

    D = np.asarray(jc.background.growth_factor(jc_cosmology(s["cosmology"]), np.array([0.5, 1.0])))
    want = (D[0] / D[1]) ** 2
    p1, p0 = (np.asarray(o["pk"]) for o in s["outputs"])
    assert p1[0] / p0[0] == pytest.approx(want, rel=0.1)
    # and by z = 0 the small scales have grown faster than linear
    assert p1[-1] / p0[-1] < want


# ------------------------------------------------------------------------------------------------
# bad input: one line, exit 2, naming the parameter, before any compilation or output folder
# ------------------------------------------------------------------------------------------------

BAD_ARGS = [
    (["--particles", "63"], "particles"),
    (["--particles", "-4"], "particles"),
    (["--particles", "abc"], "particles"),
    (["--B", "0"], "B"),
    (["--box", "-1"], "box"),
    (["--steps", "0"], "steps"),
    (["--z", "-1"], "z"),
    (["--z", "20"], "z"),
    (["--z", "1,x"], "z"),
    (["--a-init", "1.2"], "a_init"),
    (["--Omega-m", "1.5"], "Omega_m"),
    (["--Omega-b", "0.5"], "Omega_b"),
    (["--sigma8", "0"], "sigma8"),
    (["--w0", "-0.2"], "w0"),
    (["--stepper", "rk9"], "stepper"),
    (["--paint", "foo"], "paint"),
    (["--dtype", "float16"], "dtype"),
    (["--seed", "-2"], "seed"),
    (["--power-table", "nope.txt"], "power_table"),
    (["--power-table", "garbage.txt"], "power_table"),  # exists but is not a table
    (["--config", "missing.toml"], "config"),
    (["--config", "typo.toml"], "partcles"),
    (["--bogus-flag", "3"], "bogus"),
]


@pytest.mark.parametrize("args,name", BAD_ARGS, ids=[" ".join(a) for a, _ in BAD_ARGS])
def test_bad_input_fails_fast_with_one_line(tmp_path, args, name):
    (tmp_path / "garbage.txt").write_text("this is not\na power spectrum\n")
    (tmp_path / "typo.toml").write_text("partcles = 16\n")
    out, wall = cli(["simulate", *args], tmp_path)
    one_line_error(out, name)
    assert wall < 15, wall  # import time only: nothing compiled
    runs = tmp_path / "runs"
    assert not runs.exists() or not any(runs.iterdir()), "an output folder was created for bad input"


@pytest.mark.parametrize("args", [["--steps", "2.0"], ["--steps", "2", "--seed", "1.0"]])
def test_integer_valued_float_flags_never_crash(tmp_path, args):
    """``--steps 2.0`` passes validation as an integer; it must then run (exit 0) or be refused with
    one line (exit 2), never end in a traceback after the output folder exists."""
    out, _ = cli(["simulate", "--particles", "16", "--box", "64", "--quiet", *args], tmp_path)
    assert "Traceback" not in out.stderr, out.stderr[-1500:]
    assert out.returncode in (0, 2), out.stderr[-1500:]
    if out.returncode == 2:
        one_line_error(out, args[-2].lstrip("-"))


# ------------------------------------------------------------------------------------------------
# float64
# ------------------------------------------------------------------------------------------------


def test_float64_run(tmp_path):
    out, _ = cli(["simulate", *SMALL, "--dtype", "float64", "--out", "f64", "--quiet"], tmp_path)
    assert out.returncode == 0, out.stderr
    d = tmp_path / "f64"
    s = json.loads((d / "summary.json").read_text())
    assert s["config"]["dtype"] == "float64"
    delta, ic = np.load(d / "delta_z0.000.npy"), np.load(d / "ic_linear.npy")
    assert delta.dtype == np.float64 and ic.dtype == np.float64
    # float64 carries more than float32's 7 digits: the contrast sums to zero to ~1e-12
    assert abs(delta.mean()) < 1e-12
    assert np.all(np.isfinite(delta)) and delta.std() > 0.1


def test_grad_option_adjoint_equals_checkpoint(tmp_path):
    vals = {}
    for ad in ("adjoint", "checkpoint"):
        out, _ = cli(["simulate", *SMALL, "--grad", "--autodiff", ad, "--out", ad, "--quiet"], tmp_path)
        assert out.returncode == 0, out.stderr
        s = json.loads((tmp_path / ad / "summary.json").read_text())
        vals[ad] = s["gradient"]
        assert (tmp_path / ad / "grad_noise.npy").exists() and s["gradient"]["autodiff"] == ad
    a, c = vals["adjoint"], vals["checkpoint"]
    # float32: the adjoint differentiates at reconstructed states (rms p error 5e-4 of the momentum,
    # jaxpm/steppers/adjoint.py), since 2026-12-02 also the initial force; measured 1.03e-4 on d_Omega_m
    for key in ("value", "d_Omega_m", "d_sigma8", "d_noise_rms"):
        assert abs(a[key] / c[key] - 1) < 3e-4, (key, a[key], c[key])


@pytest.mark.slow  # two more CLI runs (~45 s); the gradients' values are held to finite differences in test_gradients
def test_grad_option_matches_a_finite_difference_of_the_cli_loss(tmp_path):
    out, _ = cli(["simulate", *SMALL, "--grad", "--out", "grad", "--quiet", "--no-fields"], tmp_path)
    assert out.returncode == 0, out.stderr
    c = json.loads((tmp_path / "grad" / "summary.json").read_text())["gradient"]
    # against a central finite difference of the loss over two more runs (sigma8 +- 0.01)
    loss = {}
    for sign in (1, -1):
        name = f"fd{sign}"
        out, _ = cli(["simulate", *SMALL, "--grad", "--sigma8", str(0.8102 + sign * 0.01), "--out", name, "--quiet",
                      "--no-fields"], tmp_path)
        assert out.returncode == 0, out.stderr
        loss[sign] = json.loads((tmp_path / name / "summary.json").read_text())["gradient"]["value"]
    fd = (loss[1] - loss[-1]) / 0.02
    assert abs(c["d_sigma8"] / fd - 1) < 0.02, (c["d_sigma8"], fd)
