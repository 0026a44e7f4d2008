"""jaxpm.config: validation of every setting (one ConfigError naming the parameter), TOML loading,
flag overrides, output redshifts."""

import subprocess
import sys

import pytest
from helpers import subprocess_env

from jaxpm.config import SimConfig, load_toml
from jaxpm.errors import ConfigError


def test_defaults_are_the_reference_run_and_valid():
    cfg = SimConfig().validate()
    assert (cfg.particles, cfg.B, cfg.box, cfg.steps, cfg.a_init, cfg.z, cfg.seed) == (64, 1, 128.0, 10, 0.1, (0.0,), 0)
    assert (cfg.stepper, cfg.paint, cfg.dtype, cfg.lpt_order) == ("fastpm", "cic", "float32", 2)
    # Planck 2018 (arXiv:1807.06209 Table 2, TT,TE,EE+lowE+lensing+BAO)
    assert (cfg.Omega_m, cfg.Omega_b, cfg.h, cfg.n_s, cfg.sigma8) == (0.3111, 0.0490, 0.6766, 0.9665, 0.8102)
    assert (cfg.w0, cfg.wa) == (-1.0, 0.0)
    assert cfg.a_out == [1.0]


BAD = [
    # (overrides, parameter named in the message)
    ({"particles": 63}, "particles"),
    ({"particles": -4}, "particles"),
    ({"particles": 0}, "particles"),
    ({"particles": 16.5}, "particles"),
    ({"particles": "abc"}, "particles"),
    ({"particles": True}, "particles"),
    ({"B": 0}, "B"),
    ({"B": -1}, "B"),
    ({"B": 1.5}, "B"),
    ({"box": 0}, "box"),
    ({"box": -1.0}, "box"),
    ({"box": float("inf")}, "box"),
    ({"box": "big"}, "box"),
    ({"steps": 0}, "steps"),
    ({"steps": -3}, "steps"),
    ({"steps": 2.5}, "steps"),
    ({"z": (-1.0,)}, "z"),
    ({"z": (9.0,)}, "z"),  # z_init = 1/0.1 - 1 = 9: an output at the start is not after a_init
    ({"z": (20.0,)}, "z"),
    ({"z": (1.0,), "a_init": 0.5}, "z"),
    ({"z": (1.0, 0.0, 1.0)}, "z"),
    ({"z": ()}, "z"),
    ({"z": (float("nan"),)}, "z"),
    ({"a_init": 0.0}, "a_init"),
    ({"a_init": 1.0}, "a_init"),
    ({"a_init": 1.5}, "a_init"),
    ({"a_init": -0.1}, "a_init"),
    ({"Omega_m": 0.0}, "Omega_m"),
    ({"Omega_m": -0.3}, "Omega_m"),
    ({"Omega_m": 1.5}, "Omega_m"),
    ({"Omega_b": 0.3111}, "Omega_b"),
    ({"Omega_b": 0.5}, "Omega_b"),
    ({"Omega_b": -0.01}, "Omega_b"),
    ({"sigma8": 0.0}, "sigma8"),
    ({"sigma8": -0.8}, "sigma8"),
    ({"h": 0.0}, "h"),
    ({"h": -0.7}, "h"),
    ({"n_s": 0.0}, "n_s"),
    ({"w0": -0.3}, "w0"),
    ({"w0": -1.0, "wa": 0.7}, "wa"),
    ({"stepper": "rk9"}, "stepper"),
    ({"spacing": "linear"}, "spacing"),
    ({"lpt_order": 3}, "lpt_order"),
    ({"paint": "foo"}, "paint"),
    ({"gradient": "fd3"}, "gradient"),
    ({"laplace": "fd4"}, "laplace"),
    ({"compensate": "maybe"}, "compensate"),
    ({"dtype": "float16"}, "dtype"),
    ({"seed": -1}, "seed"),
    ({"seed": 1.5}, "seed"),
    ({"rtol": 0.0}, "rtol"),
    ({"atol": -1e-5}, "atol"),
    ({"power_table": "/nonexistent/pk.txt"}, "power_table"),
]


@pytest.mark.parametrize("overrides,name", BAD, ids=[f"{k}={v}" for k, v in ((list(o.items())[-1]) for o, _ in BAD)])
def test_bad_values_raise_config_error_naming_parameter(overrides, name):
    cfg = SimConfig().updated(overrides)
    with pytest.raises(ConfigError) as err:
        cfg.validate()
    msg = str(err.value)
    assert name in err.value.parameter
    assert name in msg and "\n" not in msg
    assert msg.startswith("invalid ")


@pytest.mark.parametrize("overrides", [
    {"z": (8.99,)},
    {"Omega_m": 1.0, "Omega_b": 0.0},
    {"w0": -0.9, "wa": -0.1},
    {"particles": 16, "B": 2, "box": 50.5},
    {"stepper": "leapfrog", "spacing": "loga", "lpt_order": 1, "paint": "tsc", "gradient": "exact", "laplace": "exact"},
    {"stepper": "dopri5", "spacing": "growth", "compensate": "true"},
])
def test_boundary_values_are_accepted(overrides):
    SimConfig().updated(overrides).validate()


def test_unknown_config_key_is_named():
    with pytest.raises(ConfigError) as err:
        SimConfig.from_mapping({"partcles": 16})
    assert err.value.parameter == "config key"
    assert "partcles" in str(err.value)
    with pytest.raises(ConfigError, match="omega_lambda"):
        SimConfig.from_mapping({"cosmology": {"omega_lambda": 0.7}})
    with pytest.raises(ConfigError, match="particle"):
        SimConfig().updated({"particle": 16})


def test_toml_keys_cosmology_table_and_flag_overrides(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text(
        'particles = 32\n'
        'a-init = 0.05\n'
        'lpt_order = 1\n'
        'box = 200.0\n'
        'z = "1,0.5,0"\n'
        'stepper = "leapfrog"\n'
        'power-table = "pk.txt"\n'
        '[cosmology]\n'
        'sigma8 = 0.7\n'
        'Omega_m = 0.25\n'
        'omega_b = 0.04\n'
        'w0 = -0.9\n'
    )
    cfg = SimConfig.from_mapping(load_toml(str(path)))
    assert cfg.particles == 32 and cfg.a_init == 0.05 and cfg.lpt_order == 1 and cfg.box == 200.0
    assert cfg.z == (1.0, 0.5, 0.0)
    assert cfg.stepper == "leapfrog" and cfg.power_table == "pk.txt"
    assert (cfg.sigma8, cfg.Omega_m, cfg.Omega_b, cfg.w0) == (0.7, 0.25, 0.04, -0.9)
    assert cfg.h == SimConfig.h and cfg.steps == SimConfig.steps  # untouched keys keep defaults
    assert cfg.a_out == pytest.approx([0.5, 1 / 1.5, 1.0], rel=1e-15)

    # flags override the file; flags left out (None) keep the file's values
    new = cfg.updated({"particles": 16, "sigma8": 0.9, "z": "2", "box": None, "a_init": None})
    assert (new.particles, new.sigma8, new.z) == (16, 0.9, (2.0,))
    assert (new.box, new.a_init, new.Omega_m, new.stepper) == (200.0, 0.05, 0.25, "leapfrog")
    assert cfg.particles == 32  # updated() returns a copy

    # the underscore spelling and a list of redshifts
    path.write_text('a_init = 0.2\nz = [3, 0.0]\n[cosmology]\nh = 0.7\n')
    cfg = SimConfig.from_mapping(load_toml(str(path)))
    assert (cfg.a_init, cfg.z, cfg.h) == (0.2, (3.0, 0.0), 0.7)
    assert cfg.a_out == pytest.approx([0.25, 1.0], rel=1e-15)
    cfg.validate()


def test_toml_errors(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_toml(str(tmp_path / "missing.toml"))
    assert err.value.parameter == "config"
    bad = tmp_path / "bad.toml"
    bad.write_text("particles = = 3\n")
    with pytest.raises(ConfigError) as err:
        load_toml(str(bad))
    assert err.value.parameter == "config" and "\n" not in str(err.value)


def test_redshift_parsing_and_output_order():
    cfg = SimConfig.from_mapping({"z": "1,0.5,0"})
    assert cfg.z == (1.0, 0.5, 0.0)
    assert SimConfig.from_mapping({"z": " 1 , 0.5 ,0 ,"}).z == (1.0, 0.5, 0.0)
    assert SimConfig.from_mapping({"z": 2}).z == (2.0,)
    assert SimConfig.from_mapping({"z": [0, 3.0]}).z == (0.0, 3.0)
    # outputs always run forward in time (a increasing) whatever order the redshifts came in
    cfg = SimConfig.from_mapping({"z": "0,3,1"})
    assert cfg.a_out == pytest.approx([0.25, 0.5, 1.0], rel=1e-15)
    for bad in ("1,abc", "one"):
        with pytest.raises(ConfigError) as err:
            SimConfig.from_mapping({"z": bad})
        assert err.value.parameter == "z"


def test_as_dict_round_trips():
    cfg = SimConfig.from_mapping({"particles": 16, "z": "1,0", "sigma8": 0.7})
    d = cfg.as_dict()
    assert d["z"] == [1.0, 0.0] and d["particles"] == 16 and d["sigma8"] == 0.7
    assert SimConfig.from_mapping(d) == cfg


@pytest.mark.parametrize("field,value", [("steps", 2.0), ("seed", 1.0)])
def test_integer_valued_floats_are_rejected_or_stored_as_int(field, value):
    """A TOML ``steps = 2.0`` (or ``--steps 2.0``) either fails validation naming the parameter or
    passes as an integer, in which case the validated config must hold an int: downstream code
    (np.linspace, PRNG keys, range) rejects floats after the output folder exists."""
    cfg = SimConfig().updated({field: value})
    try:
        cfg = cfg.validate()
    except ConfigError as err:
        assert err.parameter == field
        return
    assert type(getattr(cfg, field)) is int and getattr(cfg, field) == int(value)


def test_float64_without_x64_is_refused():
    # conftest enables x64 in this process, so check in a fresh interpreter
    code = (
        "from jaxpm.config import SimConfig\n"
        "from jaxpm.errors import ConfigError\n"
        "SimConfig(particles=16).validate()\n"
        "try:\n"
        "    SimConfig(particles=16, dtype='float64').validate()\n"
        "except ConfigError as e:\n"
        "    print('PARAM', e.parameter, '|', e)\n"
        "else:\n"
        "    print('ACCEPTED')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env(), timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("PARAM dtype |"), out.stdout
    assert "float64" in out.stdout and "x64" in out.stdout
