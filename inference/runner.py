"""Run manager: warm-up, then sampling in chunks under one driver, with checkpoints and exact resume.

Layout of a run folder:
    checkpoint.npz / checkpoint.json   sampler states, tuned parameters, field accumulators, next chunk
    chunks/chunk_XXXX.npz              the stored draws of each chunk (scalars, tracked voxels, stats)

Every chunk c uses the key ``fold_in(run_key, c)`` and starts from the state saved after chunk c-1, so a
run killed at any time and resumed with ``--resume`` produces exactly the chain of an uninterrupted
run (same compiled function, same inputs). Files are written atomically (chunk file first, then the
checkpoint), so a kill between the two only redoes that chunk.

Burn-in: the first ``burn_in`` stored draws of each chain are sampled and saved like the others but
left out of the ESS, the field moments and the gradient count of the summary (the reference discards
its first 100 stored draws): at 64^3 the chains still relax from the Kaiser initialisation for
thousands of transitions after the warm-up, and that transient would be counted as autocorrelation.

Alarms (printed, and kept in ``alarms`` of the summary): the measured energy-error variance per
dimension of a chain over a chunk (unadjusted MCLMC) leaves [target / band, target * band]; a chain
has a divergent transition or a non-finite log-density.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxpm.io import atomic_write, save_json

from .diagnostics import group_ess
from .priors import GROUPS
from .samplers import make_sampler

__all__ = ["RunSpec", "Runner"]


@dataclasses.dataclass(frozen=True)
class RunSpec:
    sampler: str = "mclmc"
    chains: int = 4
    warmup: int = 512                 # tuning steps (transitions) per chain
    field_warmup: int = 0             # before it: tuning steps of the field alone, scalars at fiducial values
    samples: int = 256                # stored draws per chain after warm-up
    thinning: int = 4                 # transitions per stored draw
    chunk: int = 32                   # stored draws per chunk (one checkpoint each)
    burn_in: int = 0                  # first stored draws per chain left out of every estimate (still on disk)
    seed: int = 1
    n_voxels: int = 10                # tracked real-space voxels of delta_L (the "field" group)
    alarm_band: float = 10.0
    calibration_steps: int = 64       # transitions per calibration round (samplers with ``calibrate``)
    calibration_rounds: int = 24      # at most; ends after 3 consecutive rounds in band (chains continue: warm-up)
    mass_windows: int = 0             # refreshes of the free scalars' inverse mass from pooled draws (see _scalar_mass;
                                      # InferConfig, the CLI and bench_samplers default to 2)
    mass_window_steps: int = 256      # transitions per chain in each refresh window (rounded up to calibration rounds)
    opts: tuple = ()                  # sampler options as (key, value) pairs (hashable)

    @property
    def n_chunks(self) -> int:
        return -(-self.samples // self.chunk)


def _save_npz(path, arrays: dict):
    def write(fh):
        np.savez(fh, **arrays)

    atomic_write(path, write)


def spent_seconds(out) -> float | None:
    """Warm-up + sampling seconds (compilation excluded) recorded in the checkpoint of run folder ``out``:
    what ``Runner.run(time_budget_s=...)`` counts over all the jobs of a resumed run; None without a checkpoint."""
    ckpt = Path(out) / "checkpoint.json"
    if not ckpt.exists():
        return None
    t = json.loads(ckpt.read_text()).get("timings", {})
    return t.get("warmup_s", 0.0) + t.get("sampling_s", 0.0)


def _step_sizes(params):
    """The tuned step size(s) for the log: one number, or one per block (NUTS-within-Gibbs), not the masses."""
    if "step_size" in params:
        return f"{float(params['step_size']):.4g}"
    return ", ".join(f"{k} {float(v['step_size']):.4g}" for k, v in params.items() if isinstance(v, dict) and "step_size" in v)


def pooled_covariance(means, outer_means):
    """Covariance over all chains and steps from per-chain means of x (chains, n) and of x x^T
    (chains, n, n) over equally long windows: E[x x^T] - E[x] E[x]^T of the pooled draws, so the
    spread between chains counts."""
    m1, m2 = np.mean(means, axis=0), np.mean(outer_means, axis=0)
    cov = m2 - np.outer(m1, m1)
    return 0.5 * (cov + cov.T)


SCALAR_CORR_SHRINK = 0.1  # weight of the identity in the dense scalar block's correlation (correlation_eigen)


def correlation_eigen(cov, shrink: float = SCALAR_CORR_SHRINK):
    """Eigenvectors and eigenvalues of the correlation matrix of ``cov``, shrunk towards the identity,
    ``(1 - shrink) C + shrink I``: an estimate from a window shorter than the scalars' autocorrelation can
    be nearly singular (seen at 8^3: eigenvalues 1e-3), and a direction given that little inverse mass
    hardly moves, so the next window would measure it as small again. The shrinkage keeps every
    eigenvalue >= ``shrink``."""
    sd = np.sqrt(np.diag(cov))
    lam, u = np.linalg.eigh((1.0 - shrink) * cov / np.outer(sd, sd) + shrink * np.eye(len(sd)))
    return u, np.maximum(lam, 1e-12)


class Runner:
    """Drives one sampler on one model and data set; see the module docstring."""

    def __init__(self, model, obs, spec: RunSpec, out, log=None, truth: dict | None = None, fixed: dict | None = None):
        self.model, self.spec, self.out = model, spec, Path(out)
        self.fixed = dict(fixed) if fixed else None
        self.dim = model.dim_of(self.fixed)
        self.obs = jnp.asarray(obs, model.domain.real_dtype)
        self.truth = truth
        self.log = log or (lambda s: print(s, file=sys.stderr, flush=True))
        opts = dict(spec.opts)
        opts.setdefault("n_scalars", len(model.free_names(self.fixed)))
        self.opts = opts
        self.logdensity = model.logdensity_fn(self.obs, self.fixed)
        # for shapes, tuned-parameter handling and positions; the compiled pieces build their own from
        # the data passed as an argument (:meth:`_sampler_for`)
        self.sampler = make_sampler(spec.sampler, self.logdensity, opts)
        rng = np.random.default_rng(spec.seed)
        self.voxel_index = np.sort(rng.choice(model.domain.n_particles, spec.n_voxels, replace=False))
        key = jax.random.PRNGKey(spec.seed)
        self.k_init, self.k_warm, self.k_run = jax.random.split(key, 3)
        self.alarms: list[dict] = []
        self.timings: dict = {}
        (self.out / "chunks").mkdir(parents=True, exist_ok=True)

    # -- compiled pieces -----------------------------------------------------------------------------
    # Every compiled program takes the data (and the tracked voxels' indices) as arguments, built into
    # the sampler while tracing, rather than closing over them: closed-over arrays become constants of
    # the program, so each data set (each seed of a validation, each mock of a study) would compile
    # anew; as arguments, runs on data of the same shape lower to one program (tested), which JAX's
    # persistent compilation cache (JAX_COMPILATION_CACHE_DIR) can then serve across processes.
    def _sampler_for(self, obs, fixed=None):
        return make_sampler(self.spec.sampler, self.model.logdensity_fn(obs, fixed), self.opts)

    def _warmup_fn(self):
        n = self.spec.warmup
        return jax.jit(jax.vmap(lambda k, x, obs: self._sampler_for(obs, self.fixed).warmup(k, x, n), in_axes=(0, 0, None)))

    def _field_warmup(self, x0):
        """The reference's first warm-up stage: the same sampler tuned and run on the field alone, the
        free scalars held at their fiducial values (where ``x0`` starts them); returns ``x0`` with the
        field replaced by where those chains ended (timings ``field_warmup_s`` and its compilation, and
        its gradient evaluations, are added to the warm-up's). Why: at 64^3 the chains
        still relax from the Kaiser start for thousands of transitions, and a joint tuning done during
        that transient picks step sizes for the transient (benchmarks/README.md)."""
        free = self.model.free_names(self.fixed)
        self._field_timings = {"field_warmup_compile_s": 0.0, "field_warmup_s": 0.0}
        if self.spec.field_warmup < 1 or not free:
            return x0, 0.0
        held = dict(self.fixed or {}) | {n: self.model.fiducial[n] for n in free}
        n = self.spec.field_warmup
        keys = jax.random.split(jax.random.fold_in(self.k_warm, 10_000), self.spec.chains)

        def one(k, x, obs):
            sampler = self._sampler_for(obs, held)
            state, _, n_grads = sampler.warmup(k, x, n)
            return sampler.position(state), n_grads

        t0 = time.perf_counter()
        fn = jax.jit(jax.vmap(one, in_axes=(0, 0, None))).lower(keys, x0[:, len(free):], self.obs).compile()
        t1 = time.perf_counter()
        fields_, counts = fn(keys, x0[:, len(free):], self.obs)
        jax.block_until_ready(fields_)
        self._field_timings = {"field_warmup_compile_s": t1 - t0, "field_warmup_s": time.perf_counter() - t1}
        self.log(f"field warm-up: {n} steps x {self.spec.chains} chains, scalars at fiducial values, "
                 f"in {time.perf_counter() - t1:.1f} s (+{t1 - t0:.1f} s compilation)")
        return jnp.concatenate([x0[:, :len(free)], fields_], axis=1), float(np.sum(np.asarray(counts)))

    def _chunk_fn(self):
        sp, model = self.spec, self.model
        names = model.names
        fixed = self.fixed

        def chunk(key, state, params, skip, obs, vox):
            sampler = self._sampler_for(obs, fixed)

            def one_draw(carry, xs):
                state, acc_sum, acc_sq = carry
                key, j = xs
                keep = (j >= skip).astype(acc_sum.dtype)  # burn-in draws stay out of the field moments
                keys = jax.random.split(key, sp.thinning)
                state, infos = jax.lax.scan(lambda st, k: sampler.step(k, st, params), state, keys)
                th = model.constrain(sampler.position(state), fixed)
                dl = th["init_mesh"]
                draw = {"scalars": jnp.stack([th[n] for n in names]), "voxels": dl.reshape(-1)[vox],
                        "n_grads": jnp.sum(infos.n_grads), "energy_sq": jnp.mean(infos.energy_sq),
                        "acceptance": jnp.mean(infos.acceptance), "divergent": jnp.sum(infos.divergent),
                        "logdensity": infos.logdensity[-1]}
                return (state, acc_sum + keep * dl, acc_sq + keep * dl**2), draw

            zero = jnp.zeros(model.domain.particles, model.domain.real_dtype)
            keys = jax.random.split(key, sp.chunk)
            (state, s1, s2), draws = jax.lax.scan(one_draw, (state, zero, zero), (keys, jnp.arange(sp.chunk)))
            last = model.constrain(sampler.position(state), fixed)["init_mesh"]
            return state, draws, s1, s2, last

        return jax.jit(jax.vmap(chunk, in_axes=(0, 0, None, None, None, None)))

    # -- checkpoints ---------------------------------------------------------------------------------
    def _template(self):
        x = jnp.zeros((self.spec.chains, self.dim), self.model.domain.real_dtype)
        keys = jax.random.split(self.k_warm, self.spec.chains)
        st, par, _ = jax.eval_shape(jax.vmap(lambda k, x: self.sampler.warmup(k, x, self.spec.warmup)), keys, x)
        par = jax.eval_shape(self.sampler.combine, par)
        return st, par

    def _save_checkpoint(self, next_chunk, states, params, acc):
        leaves_s = jax.tree.leaves(states)
        leaves_p = jax.tree.leaves(params)
        arrays = {f"s{i}": np.asarray(v) for i, v in enumerate(leaves_s)}
        arrays |= {f"p{i}": np.asarray(v) for i, v in enumerate(leaves_p)}
        arrays |= {k: np.asarray(v) for k, v in acc.items()}
        _save_npz(self.out / "checkpoint.npz", arrays)
        save_json(self.out / "checkpoint.json", {"next_chunk": next_chunk, "n_state": len(leaves_s),
                                                 "n_params": len(leaves_p), "spec": dataclasses.asdict(self.spec),
                                                 "alarms": self.alarms, "timings": self.timings})

    def _load_checkpoint(self):
        meta = json.loads((self.out / "checkpoint.json").read_text())
        if meta["spec"] != json.loads(json.dumps(dataclasses.asdict(self.spec))):
            from jaxpm.errors import ConfigError

            raise ConfigError("resume", str(self.out), "a run folder made with the same sampler settings")
        data = np.load(self.out / "checkpoint.npz")
        st_t, par_t = self._template()
        states = jax.tree.unflatten(jax.tree.structure(st_t), [jnp.asarray(data[f"s{i}"]) for i in range(meta["n_state"])])
        params = jax.tree.unflatten(jax.tree.structure(par_t), [jnp.asarray(data[f"p{i}"]) for i in range(meta["n_params"])])
        acc = {k: data[k] for k in ("sum", "sumsq", "last", "n_draws")}
        self.alarms = meta["alarms"]
        self.timings = meta.get("timings", {})
        return meta["next_chunk"], states, params, acc

    # -- the driver ----------------------------------------------------------------------------------
    def run(self, resume: bool = False, stop_after: int | None = None, stop_when=None,
            time_budget_s: float | None = None) -> dict:
        """Warm up (unless resuming), then sample every remaining chunk.

        Args:
            stop_after: return after that many chunks of this call (tests use it to simulate a kill).
            stop_when: ``stop_when(draws) -> bool`` evaluated on all draws so far after each chunk; the run
                ends early (and is collected) once it is true (e.g. an ESS target).
            time_budget_s: end after the chunk that exceeds this much sampling time (warm-up included).
        """
        sp = self.spec
        chunk_fn = self._chunk_fn()
        if resume and (self.out / "checkpoint.json").exists():
            start, states, params, acc = self._load_checkpoint()
            self.log(f"resuming at chunk {start}/{sp.n_chunks}")
        else:
            x0 = self.model.kaiser_init(self.k_init, self.obs, sp.chains, self.fixed)
            x0, field_grads = self._field_warmup(x0)
            ft = self._field_timings
            t0 = time.perf_counter() - ft["field_warmup_compile_s"]  # compilation counted as compilation
            warm = self._warmup_fn()
            keys = jax.random.split(self.k_warm, sp.chains)
            compiled = warm.lower(keys, x0, self.obs).compile()
            t1 = time.perf_counter()
            states, par_c, n_w = compiled(keys, x0, self.obs)
            jax.block_until_ready(states)
            t2 = time.perf_counter()
            params = self.sampler.combine(par_c)
            self.timings = {"warmup_compile_s": t1 - t0, "warmup_s": t2 - t1 + ft["field_warmup_s"], **ft,
                            "warmup_grads": float(np.sum(np.asarray(n_w))) + field_grads}
            states, params = self._calibrate(states, params)
            states, params = self._scalar_mass(states, params)
            self.log(f"warm-up: {sp.warmup} steps x {sp.chains} chains in {t2 - t1:.1f} s "
                     f"(+{t1 - t0:.1f} s compilation); step size {_step_sizes(params)}")
            shape = (sp.chains,) + self.model.domain.particles
            acc = {"sum": np.zeros(shape), "sumsq": np.zeros(shape), "last": np.zeros(shape), "n_draws": np.zeros(())}
            start = 0
            self._save_checkpoint(0, states, params, acc)
        self.params = params
        tc0 = time.perf_counter()
        keys0 = jax.random.split(jax.random.fold_in(self.k_run, 0), sp.chains)
        vox = jnp.asarray(self.voxel_index)
        chunk_fn = chunk_fn.lower(keys0, states, params, jnp.int32(0), self.obs, vox).compile()
        self.timings["chunk_compile_s"] = time.perf_counter() - tc0
        t_start = time.perf_counter()
        self.n_done = start
        done_here = 0
        times = []
        for c in range(start, sp.n_chunks):
            tc = time.perf_counter()
            keys = jax.random.split(jax.random.fold_in(self.k_run, c), sp.chains)
            skip = min(sp.chunk, max(0, sp.burn_in - c * sp.chunk))  # burn-in draws in this chunk
            states, draws, s1, s2, last = chunk_fn(keys, states, params, jnp.int32(skip), self.obs, vox)
            draws = jax.tree.map(np.asarray, draws)
            dt = time.perf_counter() - tc
            times.append(dt)
            _save_npz(self.out / "chunks" / f"chunk_{c:04d}.npz", draws)
            acc = {"sum": acc["sum"] + np.asarray(s1), "sumsq": acc["sumsq"] + np.asarray(s2),
                   "last": np.asarray(last), "n_draws": acc["n_draws"] + sp.chunk - skip}
            self._check_alarms(c, draws)
            self.timings["sampling_s"] = self.timings.get("sampling_s", 0.0) + dt
            self._save_checkpoint(c + 1, states, params, acc)
            self._progress(c, times, draws)
            done_here += 1
            self.n_done = c + 1
            if stop_after is not None and done_here >= stop_after and c + 1 < sp.n_chunks:
                return {"stopped_at_chunk": c + 1}
            spent = self.timings.get("warmup_s", 0.0) + self.timings["sampling_s"]
            if (stop_when is not None and stop_when(self.kept_draws(c + 1))) or \
                    (time_budget_s is not None and spent > time_budget_s):
                break
        self.acc = acc
        self.timings["sampling_wall_s"] = time.perf_counter() - t_start
        return self.collect()

    def _rounds_fn(self, states, params):
        """The compiled round of ``calibration_steps`` transitions of every chain with shared parameters,
        returning the states, the mean squared energy error, the gradients, and the mean and mean outer
        product (ns, ns) of the free scalars over the round. Compiled once per run: calibration rounds and scalar-mass
        windows (several rounds each) share it (at 64^3 each compilation of such a scan costs ~50 s on an
        H200; four of them made the warm-up's compilation 330 s, measured 2026-12-02)."""
        if getattr(self, "_rounds_compiled", None) is None:
            sp, ns = self.spec, len(self.model.free_names(self.fixed))

            def rounds(key, state, params, obs):
                step = self._sampler_for(obs, self.fixed).step

                def body(st, k):
                    st, info = step(k, st, params)
                    x = self.sampler.position(st)[:ns]
                    return st, (info.energy_sq, info.n_grads, x, x[:, None] * x[None, :])

                state, (esq, ng, x1, x2) = jax.lax.scan(body, state, jax.random.split(key, sp.calibration_steps))
                return state, jnp.mean(esq), jnp.sum(ng), jnp.mean(x1, 0), jnp.mean(x2, 0)

            keys = jax.random.split(self.k_warm, sp.chains)
            self._rounds_compiled = jax.jit(jax.vmap(rounds, in_axes=(0, 0, None, None))).lower(
                keys, states, params, self.obs).compile()
        return self._rounds_compiled

    def _calibrate(self, states, params, salt: int = 0):
        """Rounds of ``calibration_steps`` transitions with the shared parameters; after each, the
        sampler's ``calibrate`` corrects them from the quantity measured over all chains (see
        :mod:`inference.samplers.mclmc`), until three consecutive rounds are in band. The chains continue
        through the rounds (warm-up). Why two: at 64^3 the energy error of a fixed step size still falls
        for thousands of transitions after blackjax's tuning (the chains are still relaxing from the
        Kaiser initialisation: EEVPD 1.3e-6 in the first 32 transitions, 5e-11 after ~2500, measured on
        an H200), so one in-band round right after the tuning proves nothing; while the energy error falls
        the rounds keep raising the step size, which also shortens the relaxation."""
        cal, sp = self.sampler.calibrate, self.spec
        if cal is None or sp.calibration_steps < 1:
            return states, params
        t0 = time.perf_counter()
        fn = self._rounds_fn(states, params)
        t1 = time.perf_counter()
        in_band = 0
        for r in range(sp.calibration_rounds):
            keys = jax.random.split(jax.random.fold_in(self.k_warm, 1 + salt + r), sp.chains)
            before = states
            states, esq, ng, _, _ = fn(keys, states, params, self.obs)
            measured = float(np.mean(np.asarray(esq))) / self.dim
            self.timings["warmup_grads"] += float(np.sum(np.asarray(ng)))
            new, ok = cal(params, measured)
            in_band = in_band + 1 if ok else 0
            # a round whose step size had to be cut hard (by > 30 %: MCLMC's energy error > ~8x the target)
            # is undone: an unadjusted sampler's chains are thrown off by too large a step (seen after the
            # scalar-mass windows raised entries 300x at 16^3); a mild excess is kept (the chains are fine)
            cut = not ok and float(new["step_size"]) < 0.7 * float(params["step_size"])
            if cut:
                states = before
            self.log(f"calibration {r + 1}/{sp.calibration_rounds}: measured {measured:.3g} at step size "
                     f"{float(params['step_size']):.4g}" + (" (in band, or below it at the cap)" if ok else
                                                             f" -> {float(new['step_size']):.4g}" + (" (round undone)" if cut else "")))
            if in_band >= 3:
                break
            # a last increase is untested: keep what was measured (a last decrease is taken)
            if r + 1 < sp.calibration_rounds or float(new["step_size"]) < float(params["step_size"]):
                params = new
        if in_band < 3:
            self._alarm(-1, -1, f"calibration did not stay in the target band for 3 rounds in {sp.calibration_rounds} "
                                f"(last measured {measured:.3g}); sampling with step size {float(params['step_size']):.4g}")
        self.timings["warmup_compile_s"] += t1 - t0
        self.timings["warmup_s"] += time.perf_counter() - t1
        self.timings["calibration_rounds"] = self.timings.get("calibration_rounds", 0) + r + 1
        return states, params

    def _scalar_mass(self, states, params):
        """Windows of ``mass_window_steps`` transitions of every chain with the shared parameters; after
        each, the free scalars' inverse-mass entries become their variance pooled over all chains and
        steps of the window (the diagonal of :func:`pooled_covariance`), and the step size is calibrated again.

        Why: blackjax's tuner sets each chain's diagonal inverse mass to the variance of its own last
        512 or so steps, about one autocorrelation time of sigma8, then the median over chains is taken.
        A slow coordinate so gets too small an entry, which makes it slower still. Measured at 16^3 (CPU,
        4 chains, 92 kept draws each, not converged): the tuned scalar entries were 9-28x below the
        scalars' pooled variance over the run (benchmarks/README.md). Pooling over chains adds the
        between-chain spread; each further window starts from a larger entry. Effect at 16^3 (CPU A/B,
        unconverged): 1.34x / 1.17x fewer gradients per effective cosmology / bias sample with two
        windows. At 64^3 (the reference configuration, H200, 8 chains, 1276 / 1600 draws each, same seed):
        gradients per effective sample cosmo 2164 -> 1232, bias 2671 -> 1614 with two windows (the first
        raised the entries 0.7-10x, the second changed them by 0.5-0.85x); InferConfig defaults to two."""
        sp = self.spec
        ns = len(self.model.free_names(self.fixed))
        inv = params.get("inverse_mass_matrix") if isinstance(params, dict) else None
        if (sp.mass_windows < 1 or not ns or getattr(inv, "ndim", 0) != 1 or self.sampler.calibrate is None
                or sp.calibration_steps < 1):
            return states, params  # adjusted samplers: their own adaptation sets mass and step together

        t0 = time.perf_counter()
        fn = self._rounds_fn(states, params)
        self.timings["warmup_compile_s"] += time.perf_counter() - t0
        n_rounds = -(-sp.mass_window_steps // sp.calibration_steps)  # a window is whole calibration rounds
        for w in range(sp.mass_windows):
            t1 = time.perf_counter()
            m1 = m2 = 0.0
            for r in range(n_rounds):
                keys = jax.random.split(jax.random.fold_in(self.k_warm, 5000 + 100 * w + r), sp.chains)
                states, _, ng, x1, x2 = fn(keys, states, params, self.obs)
                m1, m2 = m1 + np.asarray(x1) / n_rounds, m2 + np.asarray(x2) / n_rounds
                self.timings["warmup_grads"] += float(np.sum(np.asarray(ng)))
            old = np.asarray(params["inverse_mass_matrix"][:ns])
            cov = pooled_covariance(m1, m2)
            var = np.diag(cov)
            moved = var > 0
            var = np.where(moved, var, old)  # a scalar that did not move keeps its entry
            params = dict(params)
            dt = params["inverse_mass_matrix"].dtype
            params["inverse_mass_matrix"] = params["inverse_mass_matrix"].at[:ns].set(jnp.asarray(var, dt))
            note = ""
            if "scalar_U" in params and np.all(moved):  # dense scalar block: their correlation too
                u, lam = correlation_eigen(cov)
                params["scalar_U"], params["scalar_lam"] = jnp.asarray(u, dt), jnp.asarray(lam, dt)
                note = "; correlation eigenvalues " + " ".join(f"{v:.3g}" for v in lam)
            self.timings["warmup_s"] += time.perf_counter() - t1
            self.log(f"scalar mass window {w + 1}/{sp.mass_windows}: pooled variance / previous inverse mass "
                     + " ".join(f"{r:.3g}" for r in var / old) + note)
            states, params = self._calibrate(states, params, salt=1000 * (w + 1))
        return states, params

    def _check_alarms(self, c, draws):
        dim = self.dim
        if self.sampler.name == "mclmc":
            target = float(dict(self.opts).get("target_eevpd", 1e-6))
            eevpd = draws["energy_sq"].mean(axis=1) / dim
            for i, v in enumerate(eevpd):
                if not (target / self.spec.alarm_band <= v <= target * self.spec.alarm_band):
                    self._alarm(c, i, f"energy-error variance per dimension {v:.3g} outside "
                                      f"[{target / self.spec.alarm_band:.3g}, {target * self.spec.alarm_band:.3g}]")
        div = draws["divergent"].sum(axis=1)
        for i, v in enumerate(div):
            if v > 0:
                self._alarm(c, i, f"{int(v)} divergent transitions or non-finite log-density")

    def _alarm(self, chunk, chain, message):
        self.alarms.append({"chunk": chunk, "chain": chain, "message": message})
        self.log(f"ALARM chunk {chunk} chain {chain}: {message}")

    def load_draws(self, upto=None):
        n = getattr(self, "n_done", self.spec.n_chunks) if upto is None else upto
        files = [np.load(self.out / "chunks" / f"chunk_{c:04d}.npz") for c in range(n)]
        return {k: np.concatenate([f[k] for f in files], axis=1) for k in files[0].files}

    def kept_draws(self, upto=None):
        """:meth:`load_draws` without the burn-in (empty arrays while still in it)."""
        return {k: v[:, self.spec.burn_in:] for k, v in self.load_draws(upto).items()}

    def _progress(self, c, times, draws):
        sp = self.spec
        per = float(np.median(times[1:])) if len(times) > 1 else times[0]
        left = per * (sp.n_chunks - c - 1)
        d = self.kept_draws(c + 1)
        names = self.model.names
        if d["scalars"].shape[1] >= 4:
            ess = {g: group_ess([d["scalars"][..., names.index(n)] for n in ns]) for g, ns in GROUPS.items()}
            ess["sigma8"] = group_ess([d["scalars"][..., names.index("sigma8")]])
            ess["field"] = group_ess([d["voxels"][..., i] for i in range(d["voxels"].shape[-1])])
            e = f"ESS sigma8 {ess['sigma8']:.0f} cosmo {ess['cosmo']:.0f} bias {ess['bias']:.0f} field {ess['field']:.0f}"
        else:
            e = f"burn-in ({sp.burn_in} draws)"
        if self.sampler.adjusted:
            q = f"acceptance {float(draws['acceptance'].mean()):.3f}"
        else:
            q = f"EEVPD {float(draws['energy_sq'].mean()) / self.dim:.2e}"
        self.log(f"chunk {c + 1}/{sp.n_chunks}  draws {(c + 1) * sp.chunk}/{sp.samples}  chunk {times[-1]:.1f} s  "
                 f"left ~{left:.0f} s  {q}  {e}")

    def collect(self) -> dict:
        """Draws after the burn-in as arrays (chains, draws, ...), the burn-in draws, the field accumulators."""
        full = self.load_draws()
        b = self.spec.burn_in
        d = {k: v[:, b:] for k, v in full.items()}
        n = max(float(self.acc["n_draws"]), 1.0)  # 0 only if stopped inside the burn-in
        mean = self.acc["sum"] / n
        std = np.sqrt(np.maximum(self.acc["sumsq"] / n - mean**2, 0.0))
        return {"draws": d, "burn_in_draws": {k: v[:, :b] for k, v in full.items()}, "mean_field": mean, "std_field": std, "last_field": self.acc["last"],
                "alarms": self.alarms, "timings": self.timings, "voxel_index": self.voxel_index}
