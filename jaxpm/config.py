"""Simulation configuration: one flat schema shared by the command line and TOML files.

Every key of a TOML config is the long name of a command-line flag (``a_init`` or ``a-init``); a
``[cosmology]`` table may hold the cosmological parameters. Flags given on the command line override
the file. :meth:`SimConfig.validate` checks everything before any JAX compilation happens.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from pathlib import Path

from .cosmology import Cosmology, check_parameters, power_provider_from_config
from .distributed import METHODS as DISTRIBUTED_METHODS
from .domain import Domain, validate as validate_domain
from .errors import ConfigError
from .forces import ForceSpec
from .fourier import GRADIENTS, LAPLACIANS
from .painting import SCHEMES
from .simulation import ALL_STEPPERS
from .steppers import AUTODIFF, SPACINGS, STEPPERS

__all__ = ["SimConfig", "load_toml"]

_COSMO_KEYS = ("Omega_m", "Omega_b", "h", "n_s", "sigma8", "w0", "wa")


@dataclasses.dataclass
class SimConfig:
    """All settings of a run (defaults: the reference run of ``python -m jaxpm simulate``)."""

    particles: int = 64
    B: int = 1
    box: float = 128.0
    steps: int = 10
    stepper: str = "fastpm"
    spacing: str = "a"
    lpt_order: int = 2
    a_init: float = 0.1
    z: tuple = (0.0,)
    seed: int = 0
    paint: str = "cic"
    gradient: str = "fd4"
    laplace: str = "fd2"
    compensate: str = "auto"
    dtype: str = "float32"
    autodiff: str = "checkpoint"
    grad: bool = False
    rtol: float = 1e-5
    atol: float = 1e-5
    power: str | None = None          # eisenstein_hu | cosmopower | table (None: table if power_table, else EH)
    power_table: str | None = None
    amplitude: str = "sigma8"         # sigma8 | A_s (cosmopower, with ln10As) | table (the table's own)
    ln10As: float | None = None
    distributed: str = "auto"         # process start-up, see jaxpm.distributed.initialize
    pdims: tuple | None = None        # device grid (px, py); None: all devices, most square split
    halo: int | None = None           # halo width [force-mesh cells]; None: Domain's default
    capacity: float | None = None     # particle-migration buffer, fraction of a device's particles
    checkpoint_every: int = 0         # write a restart checkpoint every this many steps (0: never)
    Omega_m: float = Cosmology.Omega_m
    Omega_b: float = Cosmology.Omega_b
    h: float = Cosmology.h
    n_s: float = Cosmology.n_s
    sigma8: float = Cosmology.sigma8
    w0: float = Cosmology.w0
    wa: float = Cosmology.wa

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def from_mapping(cls, values: dict) -> "SimConfig":
        """Build from a dict (TOML content or parsed flags); unknown keys are an error."""
        fields = {f.name for f in dataclasses.fields(cls)}
        clean = {}
        for key, value in values.items():
            if key == "cosmology" and isinstance(value, dict):
                for ck, cv in value.items():
                    clean[_key(ck, fields)] = cv
                continue
            clean[_key(key, fields)] = value
        if "z" in clean:
            clean["z"] = _parse_z(clean["z"])
        if clean.get("pdims") is not None:
            clean["pdims"] = _parse_pdims(clean["pdims"])
        return cls(**clean)

    def updated(self, overrides: dict) -> "SimConfig":
        merged = dataclasses.asdict(self) | {k: v for k, v in overrides.items() if v is not None}
        return SimConfig.from_mapping(merged)

    # -- checks ----------------------------------------------------------------------------------
    def validate(self) -> "SimConfig":
        """Raise :class:`ConfigError` (one line, naming the parameter) for the first bad value.

        Whole-number floats (``steps = 10.0`` in TOML) are accepted and stored as integers.
        """
        for name in ("particles", "B", "steps", "seed", "lpt_order", "checkpoint_every"):
            setattr(self, name, _integer(name, getattr(self, name)))
        validate_domain(self.particles, _number("box", self.box), self.B, self.dtype)
        if self.steps < 1:
            raise ConfigError("steps", self.steps, "an integer >= 1")
        if self.checkpoint_every < 0:
            raise ConfigError("checkpoint_every", self.checkpoint_every, "0 (never) or a number of steps")
        if self.checkpoint_every and self.stepper not in STEPPERS:
            raise ConfigError("checkpoint_every", self.checkpoint_every, f"0 with the adaptive stepper {self.stepper!r}")
        _choice("stepper", self.stepper, ALL_STEPPERS)
        _choice("spacing", self.spacing, SPACINGS)
        _choice("lpt_order", self.lpt_order, (1, 2))
        _choice("paint", self.paint, tuple(SCHEMES))
        _choice("gradient", self.gradient, GRADIENTS)
        _choice("laplace", self.laplace, LAPLACIANS)
        _choice("compensate", str(self.compensate).lower(), ("auto", "true", "false"))
        _choice("autodiff", self.autodiff, AUTODIFF)
        _choice("distributed", self.distributed, DISTRIBUTED_METHODS)
        if not isinstance(self.grad, bool):
            raise ConfigError("grad", self.grad, "true or false")
        if self.grad and self.stepper not in STEPPERS:
            raise ConfigError("grad", self.grad, f"false with the adaptive stepper {self.stepper!r} (gradients need one of {', '.join(STEPPERS)})")
        a_init = _number("a_init", self.a_init)
        if a_init == 0.0 and self.stepper != "bullfrog":
            raise ConfigError("a_init", self.a_init, "0 < a_init < 1 (a_init = 0 only with stepper bullfrog)")
        if not 0.0 <= a_init < 1.0:
            raise ConfigError("a_init", self.a_init, "0 < a_init < 1 (or 0 with stepper bullfrog)")
        if a_init == 0.0 and self.spacing == "loga":
            raise ConfigError("spacing", self.spacing, "a or growth when a_init = 0")
        if not self.z:
            raise ConfigError("z", self.z, "at least one output redshift")
        z_init = 1.0 / a_init - 1.0 if a_init > 0 else math.inf
        for z in self.z:
            if not (math.isfinite(z) and 0.0 <= z < z_init):
                raise ConfigError("z", z, f"redshifts 0 <= z < {z_init:.4g} (after a_init = {a_init})")
        if len(set(self.z)) != len(self.z):
            raise ConfigError("z", list(self.z), "distinct redshifts")
        if self.seed < 0:
            raise ConfigError("seed", self.seed, "a non-negative integer")
        for name in ("rtol", "atol"):
            if not _number(name, getattr(self, name)) > 0:
                raise ConfigError(name, getattr(self, name), "a positive number")
        check_parameters(**{k: _number(k, getattr(self, k)) for k in _COSMO_KEYS})
        if self.ln10As is not None:
            _number("ln10As", self.ln10As)
        if self.power_table is not None and not (isinstance(self.power_table, str) and Path(self.power_table).is_file()):
            raise ConfigError("power_table", self.power_table, "an existing two-column text file (k [h/Mpc], P [(Mpc/h)^3])")
        self.cosmology()  # the provider's own checks: selection, table content, emulator training range
        return self

    # -- objects of the engine ---------------------------------------------------------------------
    def domain(self) -> Domain:
        """The Domain (its own checks name pdims, halo and capacity; all devices of all processes)."""
        return Domain.create(self.particles, self.box, self.B, self.dtype, pdims=self.pdims, halo=self.halo,
                             capacity=self.capacity)

    def cosmology(self) -> Cosmology:
        power = power_provider_from_config(self.power, self.power_table, self.amplitude)
        ln10as = None if self.ln10As is None else float(self.ln10As)
        return Cosmology(**{k: float(getattr(self, k)) for k in _COSMO_KEYS}, power=power, ln10As=ln10as)

    def force_spec(self) -> ForceSpec:
        comp = {"auto": None, "true": True, "false": False}[str(self.compensate).lower()]
        return ForceSpec(paint=self.paint, gradient=self.gradient, laplace=self.laplace, compensate=comp)

    @property
    def a_out(self) -> list[float]:
        """Output scale factors, increasing (i.e. redshifts decreasing)."""
        return sorted(1.0 / (1.0 + z) for z in self.z)

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["z"] = list(self.z)
        return d


def load_toml(path: str) -> dict:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError("config", path, "an existing TOML file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("config", path, f"valid TOML ({exc})") from None


def _key(key, fields):
    k = key.replace("-", "_")
    alias = {"omega_m": "Omega_m", "omega_b": "Omega_b", "Omega-m": "Omega_m", "lpt": "lpt_order"}
    k = alias.get(k, k)
    if k not in fields:
        raise ConfigError("config key", key, "one of " + ", ".join(sorted(fields)))
    return k


def _parse_pdims(value):
    if isinstance(value, str):
        value = value.replace("x", ",").split(",")
    try:
        pd = tuple(value)
    except TypeError:
        raise ConfigError("pdims", value, "two integers, e.g. 2,4 or [2, 4]") from None
    try:
        pd = tuple(int(v) for v in pd)
    except (TypeError, ValueError):
        raise ConfigError("pdims", value, "two integers, e.g. 2,4 or [2, 4]") from None
    if len(pd) != 2:
        raise ConfigError("pdims", value, "two integers, e.g. 2,4 or [2, 4]")
    return pd


def _parse_z(value):
    if isinstance(value, str):
        try:
            return tuple(float(v) for v in value.split(",") if v.strip())
        except ValueError:
            raise ConfigError("z", value, "comma-separated numbers, e.g. 1,0.5,0") from None
    if isinstance(value, (int, float)):
        return (float(value),)
    try:
        return tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError("z", value, "a list of numbers") from None


def _integer(name, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer():
        raise ConfigError(name, value, "an integer")
    return int(value)


def _number(name, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(name, value, "a finite number")
    return float(value)


def _choice(name, value, allowed):
    if value not in allowed:
        raise ConfigError(name, value, " or ".join(str(a) for a in allowed))
    return value
