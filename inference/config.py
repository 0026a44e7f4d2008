"""Inference configuration: one flat schema for TOML files and command-line overrides.

Same style as :mod:`jaxpm.config`: every key is a field of :class:`InferConfig` (``-`` or ``_``), keys may
be grouped in the tables ``[model]``, ``[sampler]``, ``[run]`` and ``[cosmology]`` (flattened), and
``[truth]`` holds the true scalars of a mock. :meth:`InferConfig.validate` raises a one-line
:class:`~jaxpm.errors.ConfigError` naming the parameter before anything is compiled.

Defaults: the reference's 32^3 "volume series" case (160 Mpc/h, 5 Mpc/h cells, a = 0.5, 1LPT, RSD
along z, Lagrangian bias, nbar = 1e-3 (h/Mpc)^3, dynamic Kaiser preconditioning, float64), sampled with
unadjusted MCLMC (4 chains), sized to run in a few minutes on 2 CPU cores.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from jaxpm.config import _choice, _integer, _number, _parse_pdims, load_toml
from jaxpm.cosmology import Cosmology, check_parameters, power_provider_from_config
from jaxpm.domain import Domain, validate as validate_domain
from jaxpm.errors import ConfigError
from jaxpm.painting import SCHEMES
from jaxpm.steppers import STEPPERS

from .model import EVOLUTIONS, NOISES, FieldModel, ModelSpec
from .precondition import LATENTS, PRECONDS
from .priors import REFERENCE_PRIORS, SCALARS
from .runner import RunSpec
from .samplers import SAMPLERS

__all__ = ["InferConfig", "load_toml"]

_TABLES = ("model", "sampler", "run", "cosmology")
REFERENCE_TRUTH = {"Omega_m": 0.3, "sigma8": 0.8, "b1": 1.0, "b2": 0.0, "bs2": 0.0, "bn2": 0.0}


@dataclasses.dataclass
class InferConfig:
    # model
    particles: int = 32
    box: float = 160.0
    dtype: str = "float64"
    a_obs: float = 0.5
    evolution: str = "lpt"            # kaiser | lpt | pm
    lpt_order: int = 1
    pm_steps: int = 5
    stepper: str = "bullfrog"
    pm_a_init: float = 0.0            # PM start (0: BullFrog from rest; > 0: LPT at a = pm_a_init)
    los: object = 2                   # 0, 1, 2 or "none"
    gxy_density: float = 1e-3         # galaxies per (Mpc/h)^3
    noise: str = "gaussian"           # gaussian | poisson
    paint: str = "cic"
    precond: str = "kaiser_dyn"       # direct | fourier | kaiser | kaiser_dyn
    latent: str | None = None         # modes | real (None: modes on one device, real when pdims splits the field)
    pdims: tuple = (1, 1)             # device grid (px, py) of one chain's field; uses the first px*py devices
    power: str | None = None          # eisenstein_hu | cosmopower | table
    power_table: str | None = None
    Omega_b: float = Cosmology.Omega_b
    h: float = Cosmology.h
    n_s: float = Cosmology.n_s
    # data
    seed: int = 0                     # mock: white noise of the truth (seed) and of the data (seed + 1)
    truth: dict = dataclasses.field(default_factory=lambda: dict(REFERENCE_TRUTH))
    data: str | None = None           # folder written by `python -m inference mock` (default: make one)
    fixed: tuple = ()                 # scalars held at their truth values (not sampled)
    # sampler
    sampler: str = "mclmc"            # mclmc | mams | nuts | hmc | nutsgibbs
    chains: int = 4
    warmup: int = 256
    field_warmup: int = 0             # tuning steps of the field alone (scalars at fiducial) before `warmup`
    samples: int = 128
    thinning: int = 4
    chunk: int = 32
    burn_in: int = 0                  # first stored draws per chain (of `samples`) left out of all estimates
    sampler_seed: int = 1
    n_voxels: int = 10
    target_eevpd: float = 1e-6
    pilot_evals_per_ess: float | None = None   # MCLMC 1000, MAMS 500 (the reference's pilots)
    l_factor: float | None = None              # MCLMC 0.4, MAMS 0.3
    target_accept: float | None = None         # NUTS/HMC/NUTSwG 0.65, MAMS 0.9
    max_tree_depth: int = 10
    hmc_steps: int = 32
    alarm_band: float = 10.0
    calibration_steps: int = 64       # MCLMC: transitions per step-size calibration round (0: none)
    calibration_rounds: int = 24      # at most; stops after 3 consecutive rounds in band
    calibration_max_increase: float = 2.0  # MCLMC: calibrated step size at most this times the tuned one
    mass_windows: int = 2             # MCLMC: refreshes of the scalars' inverse mass from pooled draws, each recalibrated
                                      # (64^3 on an H200: 1.7x fewer gradients per effective cosmo/bias sample; 0: off)
    mass_window_steps: int = 256      # transitions per chain in each of those windows
    dense_scalars: bool = False       # MCLMC: the windows also set the free scalars' correlations (a dense block)

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def from_mapping(cls, values: dict) -> "InferConfig":
        fields = {f.name for f in dataclasses.fields(cls)}
        clean = {}
        for key, value in values.items():
            if key in _TABLES and isinstance(value, dict):
                for k, v in value.items():
                    clean[_key(k, fields)] = v
            elif key == "truth" and isinstance(value, dict):
                clean["truth"] = dict(REFERENCE_TRUTH) | value
            else:
                clean[_key(key, fields)] = value
        if clean.get("pdims") is not None:
            clean["pdims"] = _parse_pdims(clean["pdims"])
        if "fixed" in clean:
            f = clean["fixed"]
            clean["fixed"] = tuple(f.split(",")) if isinstance(f, str) else tuple(f)
        return cls(**clean)

    @classmethod
    def load(cls, path: str | None, overrides: dict | None = None) -> "InferConfig":
        values = load_toml(path) if path else {}
        cfg = cls.from_mapping(values)
        if overrides:
            cfg = cls.from_mapping(dataclasses.asdict(cfg) | {k: v for k, v in overrides.items() if v is not None})
        return cfg.validate()

    # -- checks ----------------------------------------------------------------------------------
    def validate(self) -> "InferConfig":
        for name in ("particles", "lpt_order", "pm_steps", "seed", "chains", "warmup", "samples", "thinning",
                     "chunk", "sampler_seed", "n_voxels", "max_tree_depth", "hmc_steps", "calibration_steps", "burn_in", "field_warmup",
                     "calibration_rounds", "mass_windows", "mass_window_steps"):
            setattr(self, name, _integer(name, getattr(self, name)))
        validate_domain(self.particles, _number("box", self.box), 1, self.dtype)
        a = _number("a_obs", self.a_obs)
        if not 0.0 < a <= 1.0:
            raise ConfigError("a_obs", self.a_obs, "0 < a_obs <= 1")
        _choice("evolution", self.evolution, EVOLUTIONS)
        _choice("lpt_order", self.lpt_order, (1, 2))
        _choice("stepper", self.stepper, tuple(STEPPERS))
        _choice("noise", self.noise, NOISES)
        _choice("paint", self.paint, tuple(SCHEMES))
        _choice("precond", self.precond, PRECONDS)
        if self.pdims is None:
            self.pdims = (1, 1)
        self.pdims = _parse_pdims(self.pdims)
        if self.latent is not None:
            _choice("latent", self.latent, LATENTS)
        if self.latent == "modes" and self.pdims != (1, 1):
            raise ConfigError("latent", self.latent, f"real (or unset) when the field is split over devices, "
                              f"pdims = {list(self.pdims)} (the packed Fourier-slot latent needs one device)")
        _choice("sampler", self.sampler, SAMPLERS)
        if self.evolution == "pm":
            if self.pm_steps < 1:
                raise ConfigError("pm_steps", self.pm_steps, "an integer >= 1")
            a0 = _number("pm_a_init", self.pm_a_init)
            if not 0.0 <= a0 < a or (a0 == 0.0 and self.stepper != "bullfrog"):
                raise ConfigError("pm_a_init", self.pm_a_init, f"0 <= pm_a_init < a_obs = {a} (0 only with stepper bullfrog)")
        if str(self.los).lower() in ("none", "null", "-1"):
            self.los = None
        else:
            self.los = _choice("los", _integer("los", self.los) if not isinstance(self.los, str) else self.los, (0, 1, 2))
        if not _number("gxy_density", self.gxy_density) > 0:
            raise ConfigError("gxy_density", self.gxy_density, "a positive number density in (h/Mpc)^3")
        if not isinstance(self.truth, dict) or set(self.truth) - set(SCALARS):
            raise ConfigError("truth", self.truth, "a table with keys among " + ", ".join(SCALARS))
        for k, v in self.truth.items():
            _number(f"truth.{k}", v)
        for p in REFERENCE_PRIORS:
            v = float(self.truth[p.name])
            if not p.low < v < p.high:
                raise ConfigError(f"truth.{p.name}", v, f"inside the prior's support ({p.low}, {p.high})")
        for f in self.fixed:
            _choice("fixed", f, SCALARS)
        check_parameters(self.truth["Omega_m"], _number("Omega_b", self.Omega_b), _number("h", self.h),
                         _number("n_s", self.n_s), self.truth["sigma8"], -1.0, 0.0)
        if self.power_table is not None and not (isinstance(self.power_table, str) and Path(self.power_table).is_file()):
            raise ConfigError("power_table", self.power_table, "an existing two-column text file (k [h/Mpc], P [(Mpc/h)^3])")
        if self.data is not None and not (Path(self.data) / "obs.npy").is_file():
            raise ConfigError("data", self.data, "a folder written by `python -m inference mock` (with obs.npy)")
        for name in ("chains", "warmup", "samples", "thinning", "chunk", "n_voxels", "max_tree_depth", "hmc_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(name, getattr(self, name), "a positive integer")
        if self.field_warmup < 0:
            raise ConfigError("field_warmup", self.field_warmup, "an integer >= 0 (0: none)")
        cmi = _number("calibration_max_increase", self.calibration_max_increase)
        if not cmi >= 1.0:
            raise ConfigError("calibration_max_increase", self.calibration_max_increase, "a number >= 1")
        if not 0 <= self.burn_in < self.samples:
            raise ConfigError("burn_in", self.burn_in, f"an integer in [0, samples = {self.samples}) (stored draws per chain left out)")
        if self.calibration_steps < 0:
            raise ConfigError("calibration_steps", self.calibration_steps, "an integer >= 0 (0: no calibration)")
        if self.calibration_rounds < 1:
            raise ConfigError("calibration_rounds", self.calibration_rounds, "a positive integer")
        if self.mass_windows < 0:
            raise ConfigError("mass_windows", self.mass_windows, "an integer >= 0 (0: blackjax's tuned mass as is)")
        if not isinstance(self.dense_scalars, bool):
            raise ConfigError("dense_scalars", self.dense_scalars, "true or false")
        if self.mass_window_steps < 2:
            raise ConfigError("mass_window_steps", self.mass_window_steps, "an integer >= 2")
        if self.chains < 2:
            raise ConfigError("chains", self.chains, "at least 2 (R-hat and the median tuning need several chains)")
        if self.samples % self.chunk:
            raise ConfigError("samples", self.samples, f"a multiple of chunk = {self.chunk}")
        if self.n_voxels > self.particles**3:
            raise ConfigError("n_voxels", self.n_voxels, f"at most {self.particles ** 3}")
        if not 0 < _number("target_eevpd", self.target_eevpd) < 1:
            raise ConfigError("target_eevpd", self.target_eevpd, "0 < target_eevpd < 1 (reference 1e-6)")
        if self.target_accept is not None and not 0 < _number("target_accept", self.target_accept) < 1:
            raise ConfigError("target_accept", self.target_accept, "0 < target_accept < 1")
        for name in ("pilot_evals_per_ess", "l_factor"):
            v = getattr(self, name)
            if v is not None and not _number(name, v) > 0:
                raise ConfigError(name, v, "a positive number")
        if not _number("alarm_band", self.alarm_band) > 1:
            raise ConfigError("alarm_band", self.alarm_band, "a factor > 1")
        self.cosmology()  # the provider's own checks
        self.domain()  # pdims against the devices and the grid (ConfigError naming pdims)
        return self

    # -- objects ---------------------------------------------------------------------------------
    def domain(self) -> Domain:
        """The Domain of one chain's field: one device, or split over the first px * py devices."""
        px, py = self.pdims
        import jax

        if px * py > jax.device_count():
            raise ConfigError("pdims", list(self.pdims), f"px * py at most the number of devices, {jax.device_count()}")
        return Domain.create(self.particles, self.box, 1, self.dtype, pdims=(px, py), devices=jax.devices()[: px * py])

    def cosmology(self) -> Cosmology:
        power = power_provider_from_config(self.power, self.power_table, "sigma8")
        return Cosmology(Omega_m=float(self.truth["Omega_m"]), sigma8=float(self.truth["sigma8"]),
                         Omega_b=float(self.Omega_b), h=float(self.h), n_s=float(self.n_s), power=power)

    def model(self) -> FieldModel:
        return FieldModel(ModelSpec(
            domain=self.domain(), cosmology=self.cosmology(), a_obs=float(self.a_obs), evolution=self.evolution,
            lpt_order=self.lpt_order, pm_steps=self.pm_steps, stepper=self.stepper, pm_a_init=float(self.pm_a_init),
            los=self.los, gxy_density=float(self.gxy_density), noise=self.noise, paint=self.paint,
            precond=self.precond, latent=self.latent))

    def fixed_values(self) -> dict | None:
        return {k: float(self.truth[k]) for k in self.fixed} or None

    def run_spec(self) -> RunSpec:
        opts = {"target_eevpd": self.target_eevpd, "max_tree_depth": self.max_tree_depth, "hmc_steps": self.hmc_steps,
                "calibration_max_increase": float(self.calibration_max_increase), "dense_scalars": self.dense_scalars}
        for name in ("pilot_evals_per_ess", "l_factor", "target_accept"):
            if getattr(self, name) is not None:
                opts[name] = float(getattr(self, name))
        return RunSpec(sampler=self.sampler, chains=self.chains, warmup=self.warmup, field_warmup=self.field_warmup, samples=self.samples,
                       thinning=self.thinning, chunk=self.chunk, burn_in=self.burn_in, seed=self.sampler_seed, n_voxels=self.n_voxels,
                       alarm_band=float(self.alarm_band), calibration_steps=self.calibration_steps,
                       calibration_rounds=self.calibration_rounds, mass_windows=self.mass_windows,
                       mass_window_steps=self.mass_window_steps, opts=tuple(sorted(opts.items())))

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["fixed"] = list(self.fixed)
        d["pdims"] = list(self.pdims)
        return d


def _key(key, fields):
    k = key.replace("-", "_")
    k = {"omega_b": "Omega_b", "lpt": "lpt_order", "mesh": "particles"}.get(k, k)
    if k not in fields:
        raise ConfigError("config key", key, "one of " + ", ".join(sorted(fields)))
    return k


