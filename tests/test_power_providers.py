"""Linear-power providers (Eisenstein-Hu, CosmoPower-JAX emulator, user tables) against independent
references: CAMB run here (a Boltzmann code), scipy quadrature, finite differences, and runs of the
command line whose initial conditions must carry the chosen spectrum mode by mode.

CosmoPower-JAX and CAMB come with ``pip install -e '.[test]'``; without them the tests that need them
skip, saying which package is missing.
"""

import importlib.util
import json
import math
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import mode_power, subprocess_env
from scipy.integrate import quad

from jaxpm import Cosmology, Domain, ForceSpec, density, linear_field, simulate, white_noise
from jaxpm.config import SimConfig, load_toml
from jaxpm.cosmology import (COSMOPOWER_TRAINING_RANGE, CosmoPowerEmulator, EisensteinHu, TabulatedPower,
                             power_provider_from_config)
from jaxpm.errors import ConfigError

jax.config.update("jax_enable_x64", True)

# compiled once per provider type and k shape (eager evaluation of the sigma8 integral is slow)
linear_power = jax.jit(lambda c, k: c.linear_power(k))
HAVE_CP = importlib.util.find_spec("cosmopower_jax") is not None
HAVE_CAMB = importlib.util.find_spec("camb") is not None
needs_cp = pytest.mark.skipif(not HAVE_CP, reason="cosmopower-jax is not installed (pip install -e '.[test]')")
needs_camb = pytest.mark.skipif(not HAVE_CAMB, reason="camb is not installed (pip install -e '.[test]')")

# inside the emulator's training box; the second and third move every parameter, to either side of Planck
COSMOLOGIES = [
    dict(),
    dict(Omega_m=0.25, Omega_b=0.04, h=0.72, n_s=0.94),
    dict(Omega_m=0.38, Omega_b=0.055, h=0.65, n_s=1.0),
]


def camb_linear(Omega_m=0.3111, Omega_b=0.049, h=0.6766, n_s=0.9665, ln10As=3.047, kmax=2.0, npoints=800):
    """CAMB's linear P(k, z=0): k [h/Mpc], P [(Mpc/h)^3] in CAMB's own h units, and its sigma8.
    Massless neutrinos, as the emulator was trained."""
    import camb

    p = camb.CAMBparams(WantCls=False)
    p.set_cosmology(H0=100 * h, ombh2=Omega_b * h**2, omch2=(Omega_m - Omega_b) * h**2, mnu=0.0, omk=0.0)
    p.InitPower.set_params(As=math.exp(ln10As) * 1e-10, ns=n_s)
    p.set_matter_power(redshifts=[0.0], kmax=kmax * h * 1.05)
    res = camb.get_results(p)
    kh, _, pk = res.get_matter_power_spectrum(minkh=1e-4, maxkh=kmax, npoints=npoints)
    return kh, pk[0], float(res.get_sigma8_0())


@pytest.fixture(scope="module")
def camb_spectra():
    if not HAVE_CAMB:
        pytest.skip("camb is not installed (pip install -e '.[test]')")
    # Planck out to 50 h/Mpc, beyond the emulated modes (14.5 h/Mpc), to check the extension there
    return [camb_linear(**kw, kmax=50.0 if not kw else 2.0) for kw in COSMOLOGIES]


# --------------------------------------------------------------------------------------------------
# the emulator against CAMB
# --------------------------------------------------------------------------------------------------


@needs_cp
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the package's importlib.resources call
def test_training_range_is_the_packages_stored_normalisation():
    # the package stores the mean and std of its training inputs; a uniform box [lo, hi] has mean
    # (lo + hi)/2 and std (hi - lo)/sqrt(12): the documented box must be that one
    from cosmopower_jax.cosmopower_jax import CosmoPowerJAX

    emu = CosmoPowerJAX(probe="mpk_lin", verbose=False)
    mean, std = np.asarray(emu.param_train_mean, float), np.asarray(emu.param_train_std, float)
    lo, hi = mean - math.sqrt(3) * std, mean + math.sqrt(3) * std
    box = np.array([COSMOPOWER_TRAINING_RANGE[n] for n in ("omega_b", "omega_cdm", "h", "n_s", "ln10As", "z")])
    np.testing.assert_allclose(lo, box[:, 0], rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(hi, box[:, 1], rtol=2e-3)
    modes = np.asarray(emu.modes)
    assert modes[0] == pytest.approx(1e-5) and modes[-1] == pytest.approx(9.81, rel=1e-3)


@needs_cp
@pytest.mark.parametrize("i", range(len(COSMOLOGIES)))
def test_emulator_and_eisenstein_hu_against_camb(camb_spectra, i):
    kh, p_camb, s8_camb = camb_spectra[i]
    kw = COSMOLOGIES[i]
    sel = (kh > 1e-3) & (kh < 1.0)
    k = jnp.asarray(kh[sel])  # mostly between the emulator's modes: the interpolation is tested too

    # absolute spectrum from A_s (ln10As = 3.047 in CAMB above): units converted once, in the provider
    c_as = Cosmology(**kw, power=CosmoPowerEmulator(amplitude="A_s"), ln10As=3.047)
    err_as = np.abs(np.asarray(linear_power(c_as, k)) / p_camb[sel] - 1).max()
    assert err_as < 0.01, err_as  # measured 0.18-0.25 % (0.30 % at Omega_m = 0.2)
    assert c_as.as_dict()["sigma8_derived"] == pytest.approx(s8_camb, rel=2e-3)  # measured 0.03-0.05 %

    # normalised to CAMB's sigma8 (the default): shape only
    c_s8 = Cosmology(**kw, sigma8=s8_camb, power=CosmoPowerEmulator())
    err_s8 = np.abs(np.asarray(linear_power(c_s8, k)) / p_camb[sel] - 1).max()
    assert err_s8 < 0.01, err_s8  # measured 0.13-0.15 %

    # Eisenstein-Hu: a fit, whose error around the baryon wiggles is a few per cent
    err_eh = np.abs(np.asarray(linear_power(Cosmology(**kw, sigma8=s8_camb), k)) / p_camb[sel] - 1).max()
    assert err_eh < 0.06, err_eh  # measured 3.5-4.0 % (5.0 % at Omega_m = 0.2, h = 0.75, n_s = 0.9)
    assert err_s8 < err_eh / 10

    if not kw:  # beyond the emulated modes (k > 9.81/Mpc = 14.5 h/Mpc) the EH-shaped extension
        far = kh > 15.0
        err_far = np.abs(np.asarray(linear_power(c_s8, jnp.asarray(kh[far]))) / p_camb[far] - 1).max()
        assert err_far < 0.02, err_far  # measured 1.0 % up to 50 h/Mpc


@needs_camb
def test_table_from_camb_is_interpolated_through_the_wiggles(camb_spectra, tmp_path):
    kh, pk, _ = camb_spectra[0]
    # a coarse table as a user writes it (200 rows, comments, a third column), read back and compared
    # with CAMB's dense spectrum between its rows
    rows = np.arange(0, len(kh), 2)  # every 2nd: 400 rows, log-spaced from 1e-4 to 50 h/Mpc
    path = tmp_path / "camb_pk.txt"
    np.savetxt(path, np.c_[kh[rows], pk[rows], np.zeros(len(rows))], header="k [h/Mpc]  P [(Mpc/h)^3]  unused")
    raw = Cosmology(power=TabulatedPower.from_file(str(path), rescale_to_sigma8=False))
    sel = (kh > 1e-3) & (kh < 1.0)
    err = np.abs(np.asarray(linear_power(raw, jnp.asarray(kh[sel]))) / pk[sel] - 1).max()
    lin = np.abs(np.exp(np.interp(np.log(kh[sel]), np.log(kh[rows]), np.log(pk[rows]))) / pk[sel] - 1).max()
    assert err < 5e-4 and err < lin / 4, (err, lin)  # measured 0.026 % (linear interpolation: 0.16 %)


# --------------------------------------------------------------------------------------------------
# sigma8 normalisation and gradients
# --------------------------------------------------------------------------------------------------


@needs_cp
def test_sigma8_of_the_normalised_emulator_by_independent_quadrature():
    c = Cosmology(Omega_m=0.28, h=0.7, sigma8=0.77, power=CosmoPowerEmulator())
    pk = jax.jit(c.linear_power)
    calls = []

    def integrand(lnk):
        k = math.exp(lnk)
        w = 3 * (math.sin(8 * k) - 8 * k * math.cos(8 * k)) / (8 * k) ** 3
        calls.append(k)
        return k**3 * float(pk(jnp.asarray(k))) * w**2 / (2 * math.pi**2)

    # adaptive quadrature of the provider's own output, over a wider k range than jaxpm's integral
    s2, _ = quad(integrand, math.log(1e-6), math.log(1e3), limit=1000, epsabs=0, epsrel=1e-6)
    assert abs(math.sqrt(s2) / 0.77 - 1) < 1e-6  # measured 1e-8
    assert len(calls) > 1000  # it did adapt to the piecewise-cubic interpolation


@needs_cp
def test_power_gradients_match_finite_differences():
    k = jnp.array([0.004, 0.05, 0.2, 1.0, 30.0])
    base = Cosmology(power=CosmoPowerEmulator())
    names = ("Omega_m", "Omega_b", "h", "n_s", "sigma8")
    x0 = jnp.array([0.31, 0.049, 0.68, 0.96, 0.8])
    f = jax.jit(lambda x: jnp.log(base.replace(**dict(zip(names, x))).linear_power(k)))
    jac = np.asarray(jax.jacfwd(f)(x0))
    assert np.all(np.isfinite(jac))
    # the network weights are float32 numbers, but jaxpm evaluates it in the dtype of its inputs
    # (float64 here), so it is a smooth float64 function and central differences agree to ~1e-8
    eps = 1e-6
    for i in range(len(names)):
        fd = (f(x0.at[i].add(eps)) - f(x0.at[i].add(-eps))) / (2 * eps)
        np.testing.assert_allclose(jac[:, i], fd, rtol=1e-6, atol=1e-7, err_msg=names[i])
    np.testing.assert_allclose(jac[:, 4], 2 / 0.8, rtol=1e-10)  # P ~ sigma8^2 exactly

    # amplitude from A_s: P ~ A_s, i.e. d ln P / d ln(10^10 A_s) = 1 (the emulator learnt it to 1e-4)
    c_as = Cosmology(power=CosmoPowerEmulator(amplitude="A_s"), ln10As=3.0)
    g = jax.jit(jax.jacfwd(lambda a: jnp.log(c_as.replace(ln10As=a).linear_power(k))))(3.0)
    np.testing.assert_allclose(g, 1.0, atol=1e-3)


@needs_cp
def test_gradient_through_ics_lpt_and_pm_matches_finite_differences():
    d = Domain.create(16, 64.0, dtype="float64")
    base = Cosmology(power=CosmoPowerEmulator())
    noise = white_noise(d, 3)
    weights = jnp.asarray(np.random.default_rng(0).normal(size=d.mesh_shape))

    def loss(x):
        c = base.replace(Omega_b=x[0], h=x[1], n_s=x[2])
        snap, = simulate(d, c, linear_field(d, c, noise), a_init=0.1, a_out=[1.0], steps=2, force=ForceSpec(paint="tsc"))
        return jnp.sum(weights * density(d, snap.dx, "tsc"))

    vg = jax.jit(jax.value_and_grad(loss))  # one compilation serves the gradient and the differences
    x0 = jnp.array([0.049, 0.6766, 0.9665])
    _, g = vg(x0)
    eps = 1e-6  # measured agreement 5e-10 to 4e-9 at this step (float64 throughout, see above)
    for i, name in enumerate(("Omega_b", "h", "n_s")):
        fd = (vg(x0.at[i].add(eps))[0] - vg(x0.at[i].add(-eps))[0]) / (2 * eps)
        assert abs(float(g[i]) / float(fd) - 1) < 1e-6, (name, g[i], fd)


# --------------------------------------------------------------------------------------------------
# training range and bad input
# --------------------------------------------------------------------------------------------------

OUT_OF_RANGE = [
    (dict(h=0.9), "h"),
    (dict(h=0.6), "h"),
    (dict(n_s=1.2), "n_s"),
    (dict(Omega_b=0.07), "Omega_b"),
    (dict(Omega_m=0.65), "Omega_m"),
    (dict(Omega_m=0.14), "Omega_m"),
]


@needs_cp
@pytest.mark.parametrize("kw,name", OUT_OF_RANGE, ids=[str(k) for k, _ in OUT_OF_RANGE])
def test_outside_training_range_is_a_config_error(kw, name):
    with pytest.raises(ConfigError) as err:
        Cosmology(**kw, power=CosmoPowerEmulator())
    assert name in err.value.parameter and "training range" in str(err.value) and "\n" not in str(err.value)
    # the same values through the simulation config: validate() refuses them before any compilation
    with pytest.raises(ConfigError) as err:
        SimConfig(power="cosmopower", **kw).validate()
    assert name in err.value.parameter
    # warning mode: extrapolates, loudly
    with pytest.warns(UserWarning, match="training range"):
        c = Cosmology(**kw, power=CosmoPowerEmulator(out_of_range="warn"))
    assert np.isfinite(float(linear_power(c, jnp.asarray(0.1))))


@needs_cp
def test_amplitude_parameters_are_checked():
    with pytest.raises(ConfigError, match="ln10As"):
        Cosmology(power=CosmoPowerEmulator(amplitude="A_s"))  # A_s normalisation needs ln10As
    with pytest.raises(ConfigError, match="ln10As"):
        Cosmology(power=CosmoPowerEmulator(amplitude="A_s"), ln10As=4.2)  # outside 1.61 - 3.91
    with pytest.raises(ConfigError, match="ln10As"):
        Cosmology(ln10As=3.0)  # Eisenstein-Hu normalises to sigma8: an unused A_s is refused
    with pytest.raises(ConfigError, match="w0"):
        Cosmology(power=CosmoPowerEmulator(amplitude="A_s"), ln10As=3.0, w0=-0.9)
    with pytest.raises(ConfigError, match="amplitude"):
        CosmoPowerEmulator(amplitude="sigma_8")


@needs_cp
def test_traced_parameters_outside_the_range_give_nan_not_extrapolation():
    # under a trace (e.g. a sampler's proposal) no error can be raised: P is NaN there instead
    f = jax.jit(lambda h: Cosmology(power=CosmoPowerEmulator()).replace(h=h).linear_power(jnp.asarray([0.01, 0.1])))
    assert np.all(np.isfinite(f(0.7))) and np.all(np.isnan(f(0.85)))


def test_provider_selection():
    assert isinstance(power_provider_from_config(), EisensteinHu)
    assert isinstance(power_provider_from_config("eisenstein_hu"), EisensteinHu)
    for kwargs, name in [
        (dict(power="camb"), "power"),
        (dict(power="table"), "power_table"),
        (dict(power="eisenstein_hu", table="pk.txt"), "power_table"),
        (dict(power="eisenstein_hu", amplitude="A_s"), "amplitude"),
        (dict(power="table", table="pk.txt", amplitude="A_s"), "amplitude"),
    ]:
        with pytest.raises(ConfigError) as err:
            power_provider_from_config(**kwargs)
        assert err.value.parameter == name, (kwargs, err.value)
    # the same through the simulation config, before anything is built
    for overrides, name in [({"power": "camb"}, "power"), ({"power_table": 3}, "power_table"),
                            ({"ln10As": "high"}, "ln10As"), ({"amplitude": "A_s"}, "amplitude")]:
        with pytest.raises(ConfigError) as err:
            SimConfig().updated(overrides).validate()
        assert err.value.parameter == name, (overrides, err.value)


def test_table_selection_from_toml_keeps_amplitude(tmp_path):
    k = np.geomspace(1e-4, 20, 300)
    pk = 2.0 * np.asarray(linear_power(Cosmology(), jnp.asarray(k)))
    np.savetxt(tmp_path / "pk.txt", np.c_[k, pk])
    (tmp_path / "run.toml").write_text('[cosmology]\npower = "table"\npower-table = "%s"\namplitude = "table"\n'
                                       % (tmp_path / "pk.txt"))
    cfg = SimConfig.from_mapping(load_toml(str(tmp_path / "run.toml"))).validate()
    c = cfg.cosmology()
    kk = jnp.asarray([0.01, 0.1, 1.0])
    np.testing.assert_allclose(linear_power(c, kk), 2.0 * linear_power(Cosmology(), kk), rtol=1e-4)
    assert c.as_dict()["sigma8_derived"] == pytest.approx(2**0.5 * Cosmology.sigma8, rel=1e-4)
    # the table's shape, rescaled to sigma8 by default
    c8 = SimConfig(power_table=str(tmp_path / "pk.txt"), sigma8=0.7).validate().cosmology()
    np.testing.assert_allclose(linear_power(c8, kk), linear_power(Cosmology(sigma8=0.7), kk), rtol=1e-4)


# --------------------------------------------------------------------------------------------------
# the command line
# --------------------------------------------------------------------------------------------------


def _start(args, cwd):
    return subprocess.Popen([sys.executable, "-m", "jaxpm", "simulate", *map(str, args)], cwd=cwd, env=subprocess_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@needs_cp
@needs_camb
def test_cli_runs_follow_the_chosen_provider(camb_spectra, tmp_path):
    kh, pk, _ = camb_spectra[0]
    np.savetxt(tmp_path / "camb_pk.txt", np.c_[kh, pk], header="CAMB z = 0: k [h/Mpc], P [(Mpc/h)^3]")
    small = ["--particles", "16", "--box", "64", "--steps", "2", "--seed", "5", "--quiet"]
    runs = {
        "eh": small + ["--out", "eh"],
        "cp": small + ["--power", "cosmopower", "--out", "cp"],
        "table": small + ["--power-table", "camb_pk.txt", "--out", "table"],  # the flag alone selects the table
    }
    procs = {name: _start(args, tmp_path) for name, args in runs.items()}  # two cores: run side by side
    for name, proc in procs.items():
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, (name, err[-2000:])
    summary = {n: json.loads((tmp_path / n / "summary.json").read_text()) for n in runs}
    assert [summary[n]["cosmology"]["power"]["provider"] for n in runs] == \
        ["EisensteinHu", "CosmoPowerEmulator", "TabulatedPower"]

    # same seed, same white noise: mode by mode P_ic(run) / P_ic(EH run) is the providers' ratio
    kk, p_eh = mode_power(np.load(tmp_path / "eh" / "ic_linear.npy"), 64.0)
    m = kk > 0
    k = jnp.asarray(kk[m])
    ref_eh = np.asarray(linear_power(Cosmology(), k))
    for name, provider in [("cp", CosmoPowerEmulator()), ("table", TabulatedPower(kh, pk))]:
        _, p_run = mode_power(np.load(tmp_path / name / "ic_linear.npy"), 64.0)
        want = np.asarray(linear_power(Cosmology(power=provider), k)) / ref_eh
        got = p_run[m] / p_eh[m]
        assert np.ptp(want) > 0.03  # the providers differ by several per cent across these modes
        np.testing.assert_allclose(got, want, rtol=2e-4, err_msg=name)  # float32 runs


@needs_cp
def test_cli_rejects_out_of_range_before_compiling(tmp_path):
    for args, name in [(["--power", "cosmopower", "--h", "0.9"], "h"),
                       (["--power", "cosmopower", "--amplitude", "A_s"], "ln10As"),
                       (["--power", "class"], "power")]:
        t = time.perf_counter()
        proc = _start(args, tmp_path)
        _, err = proc.communicate(timeout=120)
        lines = err.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and name in lines[0], err
        assert time.perf_counter() - t < 15  # import time only
    assert not (tmp_path / "runs").exists()


def test_missing_cosmopower_package_is_named_with_its_install_command(tmp_path):
    # a Python where cosmopower_jax cannot be imported: the core works, selecting the emulator fails
    code = (
        "import sys\n"
        "sys.modules['cosmopower_jax'] = None\n"
        "sys.modules['cosmopower_jax.cosmopower_jax'] = None\n"
        "from jaxpm.config import SimConfig\n"
        "SimConfig(particles=16).validate()\n"
        "from jaxpm.cli import main\n"
        "sys.exit(main(['simulate', '--power', 'cosmopower']))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True,
                         timeout=120)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1, out.stderr
    assert "cosmopower-jax" in lines[0] and "pip install" in lines[0], lines[0]
