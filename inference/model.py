"""The field-level forward model as a numpyro model (notes section a), built on the jaxpm engine.

    (Omega_m, sigma8) -> linear P(k) (engine provider) -> delta_L(a = 1) from the real latent z
    -> 1LPT / 2LPT (jaxpm.lpt) or PM (jaxpm.simulate) to a_obs        [or the linear Kaiser model]
    -> Lagrangian bias weights (inference.bias) -> flat-sky RSD along ``los`` (inference.rsd)
    -> weighted painting on the particle mesh, window-compensated -> gxy_mesh = 1 + delta_g
    -> obs ~ Normal(gxy_mesh, 1/nbar) per cell (or Poisson counts with mean nbar * gxy_mesh)

nbar = gxy_density [(h/Mpc)^3] x V_cell [(Mpc/h)^3] is the mean galaxy count per cell (reference:
1e-3 x 5^3 = 0.125, noise variance 8). Sampled sites (all real-valued): ``<name>_`` for the six scalars
(see :mod:`inference.priors`) and ``init_mesh_`` for the latent field (see :mod:`inference.precondition`);
deterministic sites ``<name>``, ``init_mesh`` (delta_L) and ``gxy_mesh``.

Samplers see a flat position vector: ``[y_Omega_m, y_sigma8, y_b1, y_b2, y_bs2, y_bn2, z.ravel()]``
(:meth:`FieldModel.flatten`); with scalars held fixed, just ``z.ravel()``.

Sharded domains (the field of one chain split over the domain's devices): every FFT, k-grid and the
painting go through the engine's domain-aware functions, the latent layout is ``"real"`` (the packed
``"modes"`` latent is a global permutation, see :mod:`inference.precondition`), and the position is a
pytree ``{"scalars": (n_free,), "field": domain.particles}`` whose field stays sharded P("x", "y"):
:meth:`FieldModel.logdensity_tree_fn`, :meth:`FieldModel.to_tree` / :meth:`FieldModel.from_tree`,
:meth:`FieldModel.tree_shardings`, :meth:`FieldModel.put_tree`, :meth:`FieldModel.kaiser_init_tree` and
:meth:`FieldModel.constrain_tree`. Raveling such a field (as the flat position does) reshuffles it
across devices; the flat API still works there, for small problems and tests.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro import handlers
from numpyro.infer.util import log_density

import jaxpm
from jaxpm.cosmology import growth_table
from jaxpm.errors import ConfigError
from jaxpm.forces import paint_mesh
from jaxpm.painting import scheme_order

from . import fields
from .bias import bias_weights
from .precondition import (LATENTS, field_event, kaiser_boost, kaiser_scale, latent_from_linear, latent_prior, linear_from_latent,
                           wiener)
from .priors import REFERENCE_PRIORS
from .rsd import apply_rsd

__all__ = ["ModelSpec", "FieldModel", "EVOLUTIONS", "NOISES"]

EVOLUTIONS = ("kaiser", "lpt", "pm")
NOISES = ("gaussian", "poisson")


@dataclasses.dataclass(frozen=True, eq=False)
class ModelSpec:
    """Static settings of the forward model (validated by :class:`inference.config.InferConfig`)."""

    domain: jaxpm.Domain
    cosmology: jaxpm.Cosmology            # fixed parameters and the power provider; Omega_m, sigma8 replaced
    a_obs: float = 0.5
    evolution: str = "lpt"
    lpt_order: int = 1
    pm_steps: int = 5
    stepper: str = "bullfrog"
    pm_a_init: float = 0.0                # 0: BullFrog from rest
    los: int | None = 2
    gxy_density: float = 1e-3             # (h/Mpc)^3
    noise: str = "gaussian"
    paint: str = "cic"
    precond: str = "kaiser_dyn"
    priors: tuple = REFERENCE_PRIORS
    latent: str | None = None             # "modes" | "real"; None: "modes" on one device, "real" on several


class FieldModel:
    """Forward model, numpyro model, log-density and initialisation for one :class:`ModelSpec`."""

    def __init__(self, spec: ModelSpec):
        self.spec = spec
        self.domain = spec.domain
        self.names = tuple(p.name for p in spec.priors)
        self.v_cell = math.prod(self.domain.particle_spacing)
        self.nbar = spec.gxy_density * self.v_cell
        self.fiducial = {p.name: p.loc_fid for p in spec.priors}
        self.dim = len(self.names) + self.domain.n_particles
        latent = spec.latent or ("real" if self.domain.distributed else "modes")
        if latent not in LATENTS:
            raise ConfigError("latent", latent, " or ".join(LATENTS))
        if latent == "modes" and self.domain.distributed:
            raise ConfigError("latent", latent, "'real' on a distributed domain (the packed Fourier-slot latent is a "
                              "global permutation of the grid, one device only)")
        self.latent = latent

    # -- physics ---------------------------------------------------------------------------------
    def cosmo(self, th):
        return self.spec.cosmology.replace(Omega_m=th["Omega_m"], sigma8=th["sigma8"])

    def pk_cell(self, cosmo):
        """P(k)/V_cell on the rfft grid (0 at k = 0), from the engine's provider and k-grid."""
        _, k, _ = fields.kgrid(self.domain, None)
        good = k > 0
        return jnp.where(good, cosmo.linear_power(jnp.where(good, k, 1.0)) / self.v_cell, 0.0)

    def growth(self, cosmo):
        g = growth_table(cosmo, self.domain.real_dtype)
        a = jnp.asarray(self.spec.a_obs, self.domain.real_dtype)
        return g, g.D1(a), g.f1(a)

    def boost(self, D, f, b1):
        """Linear response of the cell-centred galaxy mesh to delta_L(k): the Kaiser boost
        D (1 + b1 + f mu^2) times the half-cell phase from the particle lattice to the mesh cells."""
        _, _, mu2 = fields.kgrid(self.domain, self.spec.los)
        return kaiser_boost(D, f, b1, mu2) * fields.half_cell_shift(self.domain)

    def latent_scale(self, th, pk, D, f):
        """S(k) of the parametrisation (1 for direct/fourier)."""
        if self.spec.precond in ("direct", "fourier"):
            return jnp.ones_like(pk)
        if self.spec.precond == "kaiser":
            th = self.fiducial
            cosmo = self.cosmo(th)
            pk = self.pk_cell(cosmo)
            _, D, f = self.growth(cosmo)
        return kaiser_scale(self.nbar, self.boost(D, f, th["b1"]), pk)

    def forward(self, th, cosmo, g, D, f, delta_lin):
        """gxy_mesh = 1 + delta_g on the particle mesh from delta_L (a = 1)."""
        sp, dom = self.spec, self.domain
        if sp.evolution == "kaiser":
            return 1.0 + fields.kaiser_filter(dom, delta_lin, self.boost(D, f, th["b1"]))
        if sp.evolution == "lpt":
            dx, p = jaxpm.lpt(dom, cosmo, delta_lin, sp.a_obs, sp.lpt_order, growth=g)
        else:
            snap, = jaxpm.simulate(dom, cosmo, delta_lin, a_init=sp.pm_a_init, a_out=[sp.a_obs],
                                   steps=sp.pm_steps, stepper=sp.stepper, lpt_order=sp.lpt_order)
            dx, p = snap.dx, snap.p
        w = bias_weights(dom, D * delta_lin, th["b1"], th["b2"], th["bs2"], th["bn2"])
        dx = apply_rsd(cosmo, dx, p, sp.a_obs, sp.los)
        mesh = paint_mesh(dom, dom.to_mesh_units(dx), w, sp.paint)
        return fields.compensate(dom, mesh, scheme_order(sp.paint))

    def linear(self, z, pk, S, cosmo):
        """delta_L (a = 1) from the latent field ``z`` (this model's parametrisation and layout)."""
        return linear_from_latent(self.domain, self.spec.precond, z, pk, S, cosmo, self.latent)

    def latent_of(self, delta_k, pk, S):
        """The latent field of an rfft array of delta_L (inverse of :meth:`linear`, k = 0 mode set to 0)."""
        return latent_from_linear(self.domain, self.spec.precond, delta_k, pk, S, self.latent)

    # -- numpyro model -----------------------------------------------------------------------------
    def model(self, obs=None):
        th = {}
        for p in self.spec.priors:
            y = numpyro.sample(p.name + "_", p.latent())
            th[p.name] = numpyro.deterministic(p.name, p.to_base(y))
        cosmo = self.cosmo(th)
        pk = self.pk_cell(cosmo)
        g, D, f = self.growth(cosmo)
        S = self.latent_scale(th, pk, D, f)
        z = numpyro.sample("init_mesh_", latent_prior(self.domain, self.spec.precond, S, self.latent))
        dl = numpyro.deterministic("init_mesh", self.linear(z, pk, S, cosmo))
        mesh = numpyro.deterministic("gxy_mesh", self.forward(th, cosmo, g, D, f, dl))
        if self.spec.noise == "gaussian":
            numpyro.sample("obs", field_event(self.domain, dist.Normal(mesh, 1.0 / math.sqrt(self.nbar))), obs=obs)
        else:
            # smooth positive rate (the weighted mesh can dip below 0); equals nbar*mesh for mesh >~ 0.3
            rate = self.nbar * jnp.logaddexp(10.0 * mesh, 0.0) / 10.0
            counts = numpyro.sample("obs_counts", field_event(self.domain, dist.Poisson(rate)),
                                    obs=None if obs is None else jnp.round(obs * self.nbar))
            numpyro.deterministic("obs", counts / self.nbar)

    # -- flat positions ----------------------------------------------------------------------------
    def free_names(self, fixed: dict | None = None) -> tuple:
        """Scalars that are sampled (all but those held fixed)."""
        return tuple(n for n in self.names if not fixed or n not in fixed)

    def unflatten(self, flat, fixed: dict | None = None) -> dict:
        free = self.free_names(fixed)
        out = {n + "_": flat[i] for i, n in enumerate(free)}
        out["init_mesh_"] = self.domain.constrain(flat[len(free):].reshape(self.domain.particles))
        return out

    def flatten(self, params: dict, fixed: dict | None = None):
        z = jnp.ravel(params["init_mesh_"])
        free = self.free_names(fixed)
        if not free:
            return z
        return jnp.concatenate([jnp.stack([jnp.asarray(params[n + "_"], z.dtype) for n in free]), z])

    def latent_scalars(self, th: dict) -> dict:
        return {p.name + "_": p.to_latent(float(th[p.name])) for p in self.spec.priors if p.name in th}

    def _conditioned(self, obs, fixed):
        cond = {"obs": obs} if self.spec.noise == "gaussian" else {}
        if fixed:
            cond.update({k: jnp.asarray(v, self.domain.real_dtype) for k, v in self.latent_scalars(fixed).items()})
        kwargs = {"obs": obs} if self.spec.noise == "poisson" else {}
        return handlers.condition(self.model, data=cond), kwargs

    def logdensity_fn(self, obs, fixed: dict | None = None):
        """log p(latents, obs) as a function of the flat position ``[free scalars' y, z]``. ``fixed``:
        base values of scalars held fixed (not sampled; the conditional density)."""
        model, kwargs = self._conditioned(self.put_obs(obs), fixed)

        def logdensity(flat):
            return log_density(model, (), kwargs, self.unflatten(flat, fixed))[0]

        return logdensity

    def constrain(self, flat, fixed: dict | None = None) -> dict:
        """Base scalars (and delta_L) of a flat position, without the forward model."""
        return self._constrain_params(self.unflatten(flat, fixed), fixed)

    def _constrain_params(self, params, fixed):
        th = {}
        for p in self.spec.priors:
            if fixed and p.name in fixed:
                th[p.name] = jnp.asarray(fixed[p.name], self.domain.real_dtype)
            else:
                th[p.name] = p.to_base(params[p.name + "_"])
        cosmo = self.cosmo(th)
        pk = self.pk_cell(cosmo)
        _, D, f = self.growth(cosmo)
        S = self.latent_scale(th, pk, D, f)
        th["init_mesh"] = self.linear(params["init_mesh_"], pk, S, cosmo)
        return th

    # -- pytree positions (sharded fields) ------------------------------------------------------------
    def put_obs(self, obs):
        """The data on the domain's layout (a sharded array on a distributed domain)."""
        return self.domain.put(jnp.asarray(obs, self.domain.real_dtype))

    def params_of_tree(self, tree: dict, fixed: dict | None = None) -> dict:
        """numpyro site values of a pytree position ``{"scalars": (n_free,), "field": particles}``."""
        out = {n + "_": tree["scalars"][i] for i, n in enumerate(self.free_names(fixed))}
        out["init_mesh_"] = self.domain.constrain(tree["field"])
        return out

    def tree_of_params(self, params: dict, fixed: dict | None = None) -> dict:
        z = params["init_mesh_"]
        free = self.free_names(fixed)
        scal = jnp.stack([jnp.asarray(params[n + "_"], z.dtype) for n in free]) if free else jnp.zeros((0,), z.dtype)
        return {"scalars": scal, "field": self.domain.constrain(z)}

    def to_tree(self, flat, fixed: dict | None = None) -> dict:
        """Flat position(s) (..., dim) -> pytree ``{"scalars": (..., n_free), "field": (...,) + particles}``
        (reshuffles a sharded field: for start-up and I/O, not per step)."""
        n = len(self.free_names(fixed))
        field = flat[..., n:].reshape(flat.shape[:-1] + self.domain.particles)
        if field.ndim in (3, 4):
            field = self.domain.constrain(field, "real" if field.ndim == 3 else "stack")
        return {"scalars": flat[..., :n], "field": field}

    def from_tree(self, tree: dict):
        """Pytree position(s) -> flat (..., dim) (gathers a sharded field: for I/O, not per step)."""
        f = tree["field"]
        lead = f.shape[:-3]
        return jnp.concatenate([tree["scalars"], f.reshape(lead + (-1,))], axis=-1)

    def tree_shardings(self, chains: bool = False):
        """NamedShardings of a pytree position (None on one device): scalars replicated, field P("x", "y")
        (with a leading chain axis when ``chains``: P(None, "x", "y"))."""
        d = self.domain
        if not d.distributed:
            return None
        from jax.sharding import NamedSharding, PartitionSpec

        return {"scalars": NamedSharding(d.device_mesh, PartitionSpec()),
                "field": d.sharding("stack", 4) if chains else d.sharding("real", 3)}

    def put_tree(self, tree: dict) -> dict:
        """Place a pytree position (or a stack of them, leading chain axis) on the domain's layout."""
        sh = self.tree_shardings(chains=jnp.ndim(tree["field"]) == 4)
        if sh is None:
            return jax.tree.map(jnp.asarray, tree)
        return jax.tree.map(jax.device_put, tree, sh)

    def logdensity_tree_fn(self, obs, fixed: dict | None = None):
        """log p(latents, obs) as a function of a pytree position ``{"scalars": (n_free,), "field": (X, Y, Z)}``.

        The field is used where it lies (sharded P("x", "y") on a distributed domain); its gradient has
        the same pytree structure and sharding. Equal to ``logdensity_fn(obs, fixed)(from_tree(tree))``.
        """
        model, kwargs = self._conditioned(self.put_obs(obs), fixed)

        def logdensity(tree):
            return log_density(model, (), kwargs, self.params_of_tree(tree, fixed))[0]

        return logdensity

    def constrain_tree(self, tree: dict, fixed: dict | None = None) -> dict:
        """:meth:`constrain` for a pytree position (delta_L keeps the field's sharding)."""
        return self._constrain_params(self.params_of_tree(tree, fixed), fixed)

    # -- data and initialisation -------------------------------------------------------------------
    def mock(self, truth: dict, seed: int) -> dict:
        """Synthetic data at ``truth`` (base scalars): delta_L from the engine's white noise of ``seed``
        (independent of the parametrisation and of the device layout), noise from ``seed + 1``
        (drawn on the global grid with the partitionable threefry: the same on any layout)."""
        if self.domain.distributed:  # one compiled program (sharded eager dispatch is op-by-op and slow)
            return jax.jit(lambda: self._mock(truth, seed))()
        return self._mock(truth, seed)

    def _mock(self, truth: dict, seed: int) -> dict:
        dom = self.domain
        cosmo = self.cosmo({k: jnp.asarray(v, dom.real_dtype) for k, v in truth.items()})
        delta_lin = jaxpm.linear_field(dom, cosmo, jaxpm.white_noise(dom, seed))
        pk = self.pk_cell(cosmo)
        g, D, f = self.growth(cosmo)
        S = self.latent_scale(truth, pk, D, f)
        z = self.latent_of(fields.rfftn(dom, delta_lin), pk, S)
        params = self.latent_scalars(truth) | {"init_mesh_": z}
        key = jax.random.key(seed + 1)
        if self.spec.noise == "poisson":
            params_cond = {k: v for k, v in params.items()}
            tr = handlers.trace(handlers.seed(handlers.condition(self.model, params_cond), key)).get_trace()
            obs = tr["obs"]["value"]
            mesh = tr["gxy_mesh"]["value"]
        else:
            mesh = self.forward(truth, cosmo, g, D, f, delta_lin)
            noise = jaxpm.white_noise(dom, key)  # = jax.random.normal(key, particles), drawn where the blocks lie
            obs = mesh + noise / math.sqrt(self.nbar)
        return {"obs": obs, "init_mesh": delta_lin, "gxy_mesh": mesh, "init_mesh_": z,
                "position": self.flatten(params), "position_tree": self.tree_of_params(params)}

    def kaiser_posterior(self, obs, th=None):
        """(m(k), sigma^2(k), pk_cell, S(k)) of the Kaiser Wiener posterior at ``th`` (default fiducial)."""
        th = self.fiducial if th is None else th
        cosmo = self.cosmo(th)
        pk = self.pk_cell(cosmo)
        _, D, f = self.growth(cosmo)
        m, var = wiener(self.domain, self.put_obs(obs), self.nbar, self.boost(D, f, th["b1"]), pk)
        return m, var, pk, self.latent_scale(th, pk, D, f)

    def kaiser_init_tree(self, key, obs, n_chains: int, fixed: dict | None = None, temperature: float = 1.0) -> dict:
        """Pytree positions ``{"scalars": (n_chains, n_free), "field": (n_chains, X, Y, Z)}`` (field sharded
        P(None, "x", "y") on a distributed domain): field drawn from the Kaiser Wiener posterior at the
        fiducial values (``fixed`` ones where given), free scalars at their fiducial values (y = 0).

        At the fiducial point the posterior of the latent is N(m_z, I) (:mod:`inference.precondition`), so
        the draw is m_z + sqrt(temperature) xi with xi unit white noise in the latent's own layout
        (k = 0 component set to 0)."""
        th = dict(self.fiducial) | dict(fixed or {})
        m, var, pk, S = self.kaiser_posterior(obs, th)
        keys = jax.random.split(key, n_chains)
        d = self.domain

        def one(k):
            xi = d.constrain(jax.random.normal(k, d.particles, d.real_dtype))
            noise_k = fields.pack(d, xi) if self.latent == "modes" else fields.rfftn(d, xi)
            dk = m + jnp.sqrt(temperature * var) * noise_k
            return d.constrain(self.latent_of(dk, pk, S))

        zs = d.constrain(jax.vmap(one)(keys), "stack")
        free = self.free_names(fixed)
        lat = self.latent_scalars(th)
        ys = jnp.asarray(np.array([lat[n + "_"] for n in free], dtype=np.float64), zs.dtype)
        return {"scalars": jnp.broadcast_to(ys, (n_chains, len(ys))), "field": zs}

    def kaiser_init(self, key, obs, n_chains: int, fixed: dict | None = None, temperature: float = 1.0):
        """Flat positions (n_chains, dim) of :meth:`kaiser_init_tree`."""
        tree = self.kaiser_init_tree(key, obs, n_chains, fixed, temperature)
        zs = tree["field"].reshape(n_chains, -1)
        if not self.free_names(fixed):
            return zs
        return jnp.concatenate([tree["scalars"], zs], axis=1)

    def dim_of(self, fixed: dict | None = None) -> int:
        return len(self.free_names(fixed)) + self.domain.n_particles
