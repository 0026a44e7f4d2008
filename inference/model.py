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
from jaxpm.painting import paint, scheme_order

from . import fields
from .bias import bias_weights
from .precondition import kaiser_boost, kaiser_scale, latent_from_linear, linear_from_latent, wiener
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
        mesh = paint(dom.mesh_shape, dom.to_mesh_units(dx), w, sp.paint)
        return fields.compensate(dom, mesh, scheme_order(sp.paint))

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
        shape = self.domain.particles
        scale = 1.0 if self.spec.precond in ("direct", "fourier") else fields.amp_layout(self.domain, S)
        z = numpyro.sample("init_mesh_", dist.Normal(jnp.zeros(shape, self.domain.real_dtype), scale).to_event(3))
        dl = numpyro.deterministic("init_mesh", linear_from_latent(self.domain, self.spec.precond, z, pk, S, cosmo))
        mesh = numpyro.deterministic("gxy_mesh", self.forward(th, cosmo, g, D, f, dl))
        if self.spec.noise == "gaussian":
            numpyro.sample("obs", dist.Normal(mesh, 1.0 / math.sqrt(self.nbar)).to_event(3), obs=obs)
        else:
            # smooth positive rate (the weighted mesh can dip below 0); equals nbar*mesh for mesh >~ 0.3
            rate = self.nbar * jnp.logaddexp(10.0 * mesh, 0.0) / 10.0
            counts = numpyro.sample("obs_counts", dist.Poisson(rate).to_event(3),
                                    obs=None if obs is None else jnp.round(obs * self.nbar))
            numpyro.deterministic("obs", counts / self.nbar)

    # -- flat positions ----------------------------------------------------------------------------
    def free_names(self, fixed: dict | None = None) -> tuple:
        """Scalars that are sampled (all but those held fixed)."""
        return tuple(n for n in self.names if not fixed or n not in fixed)

    def unflatten(self, flat, fixed: dict | None = None) -> dict:
        free = self.free_names(fixed)
        out = {n + "_": flat[i] for i, n in enumerate(free)}
        out["init_mesh_"] = flat[len(free):].reshape(self.domain.particles)
        return out

    def flatten(self, params: dict, fixed: dict | None = None):
        z = jnp.ravel(params["init_mesh_"])
        free = self.free_names(fixed)
        if not free:
            return z
        return jnp.concatenate([jnp.stack([jnp.asarray(params[n + "_"], z.dtype) for n in free]), z])

    def latent_scalars(self, th: dict) -> dict:
        return {p.name + "_": p.to_latent(float(th[p.name])) for p in self.spec.priors if p.name in th}

    def logdensity_fn(self, obs, fixed: dict | None = None):
        """log p(latents, obs) as a function of the flat position ``[free scalars' y, z]``. ``fixed``:
        base values of scalars held fixed (not sampled; the conditional density)."""
        cond = {"obs": obs} if self.spec.noise == "gaussian" else {}
        if fixed:
            cond.update({k: jnp.asarray(v, self.domain.real_dtype) for k, v in self.latent_scalars(fixed).items()})
        model = handlers.condition(self.model, data=cond)
        kwargs = {"obs": obs} if self.spec.noise == "poisson" else {}

        def logdensity(flat):
            return log_density(model, (), kwargs, self.unflatten(flat, fixed))[0]

        return logdensity

    def constrain(self, flat, fixed: dict | None = None) -> dict:
        """Base scalars (and delta_L) of a flat position, without the forward model."""
        params = self.unflatten(flat, fixed)
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
        th["init_mesh"] = linear_from_latent(self.domain, self.spec.precond, params["init_mesh_"], pk, S, cosmo)
        return th

    # -- data and initialisation -------------------------------------------------------------------
    def mock(self, truth: dict, seed: int) -> dict:
        """Synthetic data at ``truth`` (base scalars): delta_L from the engine's white noise of ``seed``
        (independent of the parametrisation), noise from ``seed + 1``."""
        cosmo = self.cosmo({k: jnp.asarray(v, self.domain.real_dtype) for k, v in truth.items()})
        delta_lin = jaxpm.linear_field(self.domain, cosmo, jaxpm.white_noise(self.domain, seed))
        pk = self.pk_cell(cosmo)
        g, D, f = self.growth(cosmo)
        S = self.latent_scale(truth, pk, D, f)
        z = latent_from_linear(self.domain, self.spec.precond, fields.rfftn(self.domain, delta_lin), pk, S)
        params = self.latent_scalars(truth) | {"init_mesh_": z}
        key = jax.random.key(seed + 1)
        if self.spec.noise == "poisson":
            params_cond = {k: v for k, v in params.items()}
            tr = handlers.trace(handlers.seed(handlers.condition(self.model, params_cond), key)).get_trace()
            obs = tr["obs"]["value"]
            mesh = tr["gxy_mesh"]["value"]
        else:
            mesh = self.forward(truth, cosmo, g, D, f, delta_lin)
            noise = jax.random.normal(key, mesh.shape, mesh.dtype)
            obs = mesh + noise / math.sqrt(self.nbar)
        return {"obs": obs, "init_mesh": delta_lin, "gxy_mesh": mesh, "init_mesh_": z,
                "position": self.flatten(params)}

    def kaiser_posterior(self, obs, th=None):
        """(m(k), sigma^2(k), pk_cell, S(k)) of the Kaiser Wiener posterior at ``th`` (default fiducial)."""
        th = self.fiducial if th is None else th
        cosmo = self.cosmo(th)
        pk = self.pk_cell(cosmo)
        _, D, f = self.growth(cosmo)
        m, var = wiener(self.domain, obs, self.nbar, self.boost(D, f, th["b1"]), pk)
        return m, var, pk, self.latent_scale(th, pk, D, f)

    def kaiser_init(self, key, obs, n_chains: int, fixed: dict | None = None, temperature: float = 1.0):
        """Flat positions (n_chains, dim): field drawn from the Kaiser Wiener posterior at the fiducial
        values (``fixed`` ones where given), free scalars at their fiducial values (y = 0)."""
        th = dict(self.fiducial) | dict(fixed or {})
        m, var, pk, S = self.kaiser_posterior(obs, th)
        keys = jax.random.split(key, n_chains)

        def one(k):
            xi = jax.random.normal(k, self.domain.particles, self.domain.real_dtype)
            dk = m + jnp.sqrt(temperature * var) * fields.pack(self.domain, xi)
            return latent_from_linear(self.domain, self.spec.precond, dk, pk, S)

        zs = jax.vmap(one)(keys).reshape(n_chains, -1)
        free = self.free_names(fixed)
        if not free:
            return zs
        lat = self.latent_scalars(th)
        ys = jnp.asarray(np.array([lat[n + "_"] for n in free]), zs.dtype)
        return jnp.concatenate([jnp.broadcast_to(ys, (n_chains, len(ys))), zs], axis=1)

    def dim_of(self, fixed: dict | None = None) -> int:
        return len(self.free_names(fixed)) + self.domain.n_particles
