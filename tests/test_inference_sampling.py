"""Samplers and the run manager on small problems with known answers (8^3, scalars fixed so that the
compiled log-density stays cheap; the full model is exercised by test_inference_model and the slow test)."""

import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxpm
from inference import fields
from inference.diagnostics import ess, group_ess
from inference.model import FieldModel, ModelSpec
from inference.priors import REFERENCE_PRIORS
from inference.runner import SCALAR_CORR_SHRINK, RunSpec, Runner
from inference.samplers import make_sampler

FID = {p.name: p.loc_fid for p in REFERENCE_PRIORS}


def _model(evolution="kaiser", precond="kaiser_dyn", n=8):
    d = jaxpm.Domain.create(n, 5.0 * n, dtype="float64")
    return FieldModel(ModelSpec(domain=d, cosmology=jaxpm.Cosmology(), evolution=evolution, precond=precond))


def _chains(model, obs, name, opts, n_chains, n_warm, n_draws, thin, seed=0):
    """Run a sampler directly (vmapped chains); returns draws of the latent (chains, draws, dim) and grads."""
    ld = model.logdensity_fn(obs, FID)
    s = make_sampler(name, ld, dict(opts))
    x0 = model.kaiser_init(jax.random.key(seed), obs, n_chains, FID)
    keys = jax.random.split(jax.random.key(seed + 1), n_chains)
    st, par, _ = jax.jit(jax.vmap(lambda k, x: s.warmup(k, x, n_warm)))(keys, x0)
    par = s.combine(par)

    def run(key, st):
        def draw(st, k):
            st, info = jax.lax.scan(lambda st, kk: s.step(kk, st, par), st, jax.random.split(k, thin))
            return st, (s.position(st), jnp.sum(info.n_grads))

        return jax.lax.scan(draw, st, jax.random.split(key, n_draws))[1]

    xs, ng = jax.jit(jax.vmap(run))(jax.random.split(jax.random.key(seed + 2), n_chains), st)
    return np.asarray(xs), float(np.sum(ng))


def test_kaiser_posterior_of_preconditioned_latent_has_unit_variance():
    """Kaiser evolution, scalars at the fiducial values: the posterior of z is N(m_z, I) exactly
    (notes section b); sampled with NUTS, the variance per real degree of freedom is 1 and the mean is
    the Wiener mean, while the prior variance S^2 reaches ~10."""
    m = _model()
    data = m.mock(FID, 0)
    xs, _ = _chains(m, data["obs"], "nuts", {"target_accept": 0.8}, 4, 300, 400, 1)
    z = xs.reshape(-1, xs.shape[-1])
    mk, var, pk, S = m.kaiser_posterior(data["obs"], FID)
    s = np.asarray(fields.amp_layout(m.domain, S)).ravel()
    assert s.max() ** 2 > 5  # the prior is far from the posterior on large scales
    mz = np.asarray(fields.unpack(m.domain, jnp.where(pk > 0, mk * S / jnp.sqrt(jnp.where(pk > 0, pk, 1.0)), 0.0))).ravel()
    v = z.var(axis=0)
    good = np.arange(v.size) != 0  # slot 0 is the k = 0 mode: prior only (unit variance too)
    n_eff = 4 * 400 * 0.5
    assert v[good].mean() == pytest.approx(1.0, abs=0.04)
    for sel in (s > 2.0, s < 1.3):  # large scales (S^2 > 4) and small scales separately
        assert v[sel].mean() == pytest.approx(1.0, abs=0.08)
    # mean: standardised deviations from the Wiener mean are ~N(0, 1/n_eff)
    dev = (z.mean(axis=0) - mz)[good] * np.sqrt(n_eff)
    assert np.sqrt(np.mean(dev**2)) < 2.0


def test_calibration_never_raises_the_step_beyond_the_cap():
    """Rescaling follows (target / measured)^(1/6), but increases stop at calibration_max_increase times
    the tuned step (an uncapped run at 64^3 on an H200 raised it 2.6x while the chains relaxed and then
    diverged); a too-small energy error at the cap is accepted, a too-large one still lowers the step."""
    s = make_sampler("mclmc", lambda x: -0.5 * jnp.sum(x**2), {"target_eevpd": 1e-6, "calibration_max_increase": 2.0})
    p = s.combine({"step_size": jnp.full((2,), 1.0), "inverse_mass_matrix": jnp.ones((2, 3))})
    assert float(p["tuned_step_size"]) == 1.0
    q, ok = s.calibrate(p, 1e-6 * 2.0**-6 / 1.1)  # wants a bit more than 2x
    assert not ok and float(q["step_size"]) == pytest.approx(2.0) and float(q["L"] / q["step_size"]) == pytest.approx(float(p["L"] / p["step_size"]))
    q2, ok2 = s.calibrate(q, 1e-9)  # at the cap and still too small: accepted, unchanged
    assert ok2 and float(q2["step_size"]) == pytest.approx(2.0)
    q3, ok3 = s.calibrate(q, 64e-6)  # too large: halved
    assert not ok3 and float(q3["step_size"]) == pytest.approx(1.0)
    assert s.calibrate(p, 1.2e-6)[1]  # in band


def test_field_warmup_relaxes_the_field_to_its_conditional_posterior(tmp_path):
    """The field-only warm-up (scalars held at their fiducial values) samples the conditional posterior
    of z, which for Kaiser evolution at the fiducial point is N(m_z, I): chains started 3x too hot
    (squared deviation from m_z ~9 per degree of freedom) end at ~1, the scalars untouched."""
    m = _model()
    data = m.mock(FID, 5)
    bias = {k: FID[k] for k in ("b1", "b2", "bs2", "bn2")}
    spec = RunSpec(sampler="mclmc", chains=2, field_warmup=400, samples=8, chunk=8, n_voxels=2,
                   opts=(("pilot_evals_per_ess", 50.0), ("target_eevpd", 1e-4)))
    r = Runner(m, data["obs"], spec, tmp_path, log=lambda s: None, fixed=bias)
    hot = m.kaiser_init(jax.random.key(3), r.obs, 2, bias, temperature=9.0)
    x, n_grads = r._field_warmup(hot)
    mk, _, pk, S = m.kaiser_posterior(data["obs"], FID)
    mz = np.asarray(fields.unpack(m.domain, jnp.where(pk > 0, mk * S / jnp.sqrt(jnp.where(pk > 0, pk, 1.0)), 0.0))).ravel()
    dev0 = np.mean((np.asarray(hot[:, 2:]) - mz)[:, 1:] ** 2, axis=1)
    dev = np.mean((np.asarray(x[:, 2:]) - mz)[:, 1:] ** 2, axis=1)  # slot 0: the k = 0 mode
    assert np.all(dev0 > 7) and np.all(np.abs(dev - 1) < 0.25), (dev0, dev)
    np.testing.assert_array_equal(np.asarray(x[:, :2]), np.asarray(hot[:, :2]))
    assert n_grads > 2 * 2 * 300 and r._field_timings["field_warmup_s"] > 0


@pytest.mark.slow  # ~95 s on 2 cores: with the heavier validation (make test-slow), keeps make test < 20 min
def test_kaiser_preconditioning_lowers_gradients_per_effective_sample():
    """Same 1LPT + bias + RSD posterior (field, scalars fixed), same sampler (NUTS, unit mass, step size
    adapted): Kaiser-preconditioned latent against the prior-only (Fourier) one, N_eval/ESS of delta_L voxels."""
    cost = {}
    for pre in ("fourier", "kaiser_dyn"):
        m = _model(evolution="lpt", precond=pre)
        data = m.mock(FID, 0)
        xs, ng = _chains(m, data["obs"], "nuts", {"adapt_mass": False, "target_accept": 0.8}, 4, 150, 150, 1)
        lin = jax.jit(jax.vmap(jax.vmap(lambda x: m.constrain(x, FID)["init_mesh"].ravel()[:64])))
        dl = np.asarray(lin(jnp.asarray(xs)))
        cost[pre] = ng / group_ess([dl[..., i] for i in range(dl.shape[-1])])
    print(cost)
    assert cost["kaiser_dyn"] * 1.3 < cost["fourier"], cost  # measured 1.67x (78.7 vs 131.5)


def test_mclmc_energy_error_is_tuned_to_target():
    m = _model()
    data = m.mock(FID, 1)
    ld = m.logdensity_fn(data["obs"], FID)
    s = make_sampler("mclmc", ld, {"target_eevpd": 1e-4})
    x0 = m.kaiser_init(jax.random.key(0), data["obs"], 2, FID)
    st, par, _ = jax.jit(jax.vmap(lambda k, x: s.warmup(k, x, 400)))(jax.random.split(jax.random.key(1), 2), x0)
    par = s.combine(par)
    _, infos = jax.jit(jax.vmap(lambda k, st: jax.lax.scan(lambda st, kk: s.step(kk, st, par), st,
                                                            jax.random.split(k, 300))))(jax.random.split(jax.random.key(2), 2), st)
    eevpd = float(jnp.mean(infos.energy_sq)) / x0.shape[1]
    assert 1e-4 / 4 < eevpd < 1e-4 * 4


def test_calibration_restores_the_energy_error_target(tmp_path):
    """A shared MCLMC step size 10x too small (energy-error variance ~1e-6 of the target, as the blackjax
    tuner left it at 64^3 on a GPU) is brought back by the runner's calibration rounds: the EEVPD then
    measured over fresh transitions is within a factor 2 of the target, and the step size is that of a
    well-tuned run to within the scatter of the tuner."""
    m = _model()
    data = m.mock(FID, 4)
    target = 1e-4
    spec = RunSpec(sampler="mclmc", chains=2, warmup=300, samples=8, thinning=1, chunk=8, n_voxels=2,
                   calibration_steps=64, calibration_rounds=10,
                   opts=(("pilot_evals_per_ess", 50.0), ("target_eevpd", target)))
    logs = []
    r = Runner(m, data["obs"], spec, tmp_path, log=logs.append, fixed=FID)
    x0 = m.kaiser_init(r.k_init, r.obs, 2, FID)
    st, par, _ = r._warmup_fn()(jax.random.split(r.k_warm, 2), x0, r.obs)
    good = r.sampler.combine(par)
    bad = dict(good, step_size=good["step_size"] * 0.1, L=good["L"] * 0.1)
    r.timings = {"warmup_grads": 0.0, "warmup_compile_s": 0.0, "warmup_s": 0.0}
    st, fixed_par = r._calibrate(st, bad)
    assert r.timings["calibration_rounds"] >= 4 and all("in band" in line for line in logs[-3:])
    assert 0.6 < float(fixed_par["step_size"] / good["step_size"]) < 1.7
    _, infos = jax.jit(jax.vmap(lambda k, s: jax.lax.scan(lambda s, kk: r.sampler.step(kk, s, fixed_par), s,
                                                           jax.random.split(k, 300))))(jax.random.split(jax.random.key(9), 2), st)
    eevpd = float(jnp.mean(infos.energy_sq)) / r.dim
    assert target / 2 < eevpd < target * 2


@pytest.mark.parametrize("sampler", ["mclmc"])
def test_resume_after_kill_gives_identical_chain(tmp_path, sampler):
    m = _model()
    data = m.mock(FID, 2)
    spec = RunSpec(sampler=sampler, chains=2, warmup=60, samples=24, thinning=2, chunk=8, n_voxels=4, burn_in=12,
                   opts=(("pilot_evals_per_ess", 50.0),))
    quiet = lambda s: None  # noqa: E731
    full = Runner(m, data["obs"], spec, tmp_path / "full", log=quiet, fixed=FID).run()
    Runner(m, data["obs"], spec, tmp_path / "cut", log=quiet, fixed=FID).run(stop_after=1)  # "killed" after chunk 1
    shutil.rmtree(tmp_path / "cut" / "chunks" / "chunk_0001.npz", ignore_errors=True)
    resumed = Runner(m, data["obs"], spec, tmp_path / "cut", log=quiet, fixed=FID).run(resume=True)
    for key in full["draws"]:
        np.testing.assert_array_equal(full["draws"][key], resumed["draws"][key])
    np.testing.assert_array_equal(full["mean_field"], resumed["mean_field"])
    # the burn-in (12 draws: all of chunk 0, half of chunk 1) is out of the draws and of the field moments
    assert full["draws"]["voxels"].shape[1] == 12 and full["burn_in_draws"]["voxels"].shape[1] == 12
    tracked = full["mean_field"].reshape(2, -1)[:, full["voxel_index"]]
    np.testing.assert_allclose(tracked, full["draws"]["voxels"].mean(axis=1), rtol=1e-10, atol=1e-12)
    # and the chain moved: the voxel draws are not constant
    assert np.ptp(full["draws"]["voxels"]) > 0


def test_runs_on_different_data_share_one_compiled_program(tmp_path):
    """The compiled pieces take the data and the tracked voxels as arguments: two data sets of one shape
    (different seeds, different voxels) lower to the same warm-up and chunk programs, so a study over
    seeds compiles once (and the persistent compilation cache serves later processes)."""
    m = _model()
    texts, obs = [], []
    for seed in (0, 1):
        data = m.mock(FID, seed)
        spec = RunSpec(sampler="mclmc", chains=2, warmup=8, samples=8, chunk=8, n_voxels=2, seed=seed + 1)
        r = Runner(m, data["obs"], spec, tmp_path / str(seed), log=lambda s: None, fixed=FID)
        keys = jax.random.split(r.k_warm, 2)
        st, par = r._template()
        warm = r._warmup_fn().lower(keys, jax.ShapeDtypeStruct((2, r.dim), r.obs.dtype), r.obs).as_text()
        chunk = r._chunk_fn().lower(keys, st, par, jnp.int32(0), r.obs, jnp.asarray(r.voxel_index)).as_text()
        texts.append((warm, chunk))
        obs.append((np.asarray(r.obs), r.voxel_index))
    assert not np.allclose(obs[0][0], obs[1][0]) and not np.array_equal(obs[0][1], obs[1][1])
    assert texts[0][0] == texts[1][0] and texts[0][1] == texts[1][1]


def test_alarm_when_energy_error_leaves_band(tmp_path):
    m = _model()
    data = m.mock(FID, 3)
    # a band of width 1.01 around the target cannot hold: every chain raises the alarm
    spec = RunSpec(sampler="mclmc", chains=2, warmup=60, samples=8, thinning=1, chunk=8, n_voxels=2,
                   alarm_band=1.01, opts=(("pilot_evals_per_ess", 50.0),))
    res = Runner(m, data["obs"], spec, tmp_path, log=lambda s: None, fixed=FID).run()
    energy = [a for a in res["alarms"] if "energy-error variance" in a["message"]]
    assert len(energy) == 2


def test_ess_matches_ar1_theory():
    """Pooled Geyer ESS of AR(1) chains against the analytic n (1 - rho) / (1 + rho)."""
    rng = np.random.default_rng(0)
    rho, n, c = 0.8, 4000, 4
    x = np.zeros((c, n))
    e = rng.normal(size=(c, n))
    for t in range(1, n):
        x[:, t] = rho * x[:, t - 1] + np.sqrt(1 - rho**2) * e[:, t]
    assert ess(x) == pytest.approx(c * n * (1 - rho) / (1 + rho), rel=0.2)
    assert group_ess([x, x[:, ::-1]]) == pytest.approx(ess(x), rel=0.05)


def test_summary_of_a_run_ended_in_its_burn_in_is_a_clear_error():
    """A run stopped (time budget, deadline) before any draw outlived the burn-in has nothing to summarise:
    a message saying so, not an IndexError from a quantile of an empty array."""
    from inference.diagnostics import summarise

    empty = np.zeros((4, 0))
    with pytest.raises(ValueError, match="burn_in"):
        summarise({"sigma8": empty}, np.zeros((4, 0, 2)), 0.0, {"cosmo": ["sigma8"]})
    rng = np.random.default_rng(1)  # and with draws, the same call works
    out = summarise({"sigma8": rng.normal(size=(4, 50))}, rng.normal(size=(4, 50, 2)), 400.0, {"cosmo": ["sigma8"]})
    assert out["parameters"]["sigma8"]["std"] == pytest.approx(1.0, rel=0.2)


def test_convergence_verdict_flags_stuck_chains_and_short_runs():
    """Independent draws from one distribution pass; chains sitting at different values (what an
    unconverged run looks like) fail on R-hat, and a short run fails on ESS, each named by group."""
    from inference.diagnostics import convergence, summarise

    rng = np.random.default_rng(5)
    ok = summarise({"sigma8": rng.normal(size=(4, 500))}, rng.normal(size=(4, 500, 2)), 1e4, {"cosmo": ["sigma8"]})
    assert convergence(ok)["converged"], convergence(ok)
    stuck = rng.normal(size=(4, 500)) + np.arange(4)[:, None]
    bad = convergence(summarise({"sigma8": stuck}, rng.normal(size=(4, 500, 2)), 1e4, {"cosmo": ["sigma8"]}))
    assert not bad["converged"] and any(p.startswith("cosmo: R-hat") for p in bad["problems"]), bad
    short = convergence(summarise({"sigma8": rng.normal(size=(4, 10))}, rng.normal(size=(4, 10, 2)), 1e4, {"cosmo": ["sigma8"]}))
    assert not short["converged"] and any("ESS" in p for p in short["problems"]), short


def test_pooled_covariance_counts_the_spread_between_chains():
    from inference.runner import pooled_covariance

    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, 300, 2)) + np.array([[-2.0], [-1.0], [1.0], [2.0]])[:, :, None]  # chains apart
    got = pooled_covariance(x.mean(axis=1), np.einsum("csi,csj->cij", x, x) / x.shape[1])
    np.testing.assert_allclose(got, np.cov(x.reshape(-1, 2).T, bias=True), rtol=1e-12)
    assert np.all(np.diag(got) > 2.0 * x.var(axis=1).mean(axis=0))  # more than the mean within-chain variance


@pytest.mark.slow  # make test under 20 minutes: the windows use the pooled estimate held by the test above
def test_scalar_mass_windows_restore_a_too_small_inverse_mass(tmp_path):
    """MCLMC with the scalars' inverse-mass entries 100x too small (what a tuner that saw a slow coordinate
    for less than its autocorrelation time leaves): two pooled windows bring them back to within a factor 3
    of the scalars' posterior variance, measured by an independent longer run with the well-tuned mass;
    the field's entries are not touched. With ``dense_scalars`` the windows also set the scalars'
    correlation (a dense block, shrunk by SCALAR_CORR_SHRINK towards none), which matches that run's
    within 0.1."""
    m = _model()
    data = m.mock(FID, 4)
    fixed = {k: v for k, v in FID.items() if k not in ("sigma8", "b1")}
    spec = RunSpec(sampler="mclmc", chains=4, warmup=400, samples=8, thinning=1, chunk=8, n_voxels=2,
                   calibration_steps=32, calibration_rounds=6, mass_windows=2, mass_window_steps=256,
                   opts=(("dense_scalars", True), ("pilot_evals_per_ess", 200.0), ("target_eevpd", 1e-4)))
    r = Runner(m, data["obs"], spec, tmp_path, log=lambda s: None, fixed=fixed)
    x0 = m.kaiser_init(r.k_init, r.obs, 4, fixed)
    st, par, _ = r._warmup_fn()(jax.random.split(r.k_warm, 4), x0, r.obs)
    good = r.sampler.combine(par)
    bad = dict(good, inverse_mass_matrix=good["inverse_mass_matrix"].at[:2].multiply(0.01))
    r.timings = {"warmup_grads": 0.0, "warmup_compile_s": 0.0, "warmup_s": 0.0}
    _, new = r._scalar_mass(st, bad)
    np.testing.assert_array_equal(np.asarray(new["inverse_mass_matrix"][2:]), np.asarray(bad["inverse_mass_matrix"][2:]))
    # reference: the scalars' posterior variance from 4 x 3000 transitions with the well-tuned mass
    def scalars_along(key, state):
        def step(s, k):
            s = r.sampler.step(k, s, good)[0]
            return s, r.sampler.position(s)[:2]

        return jax.lax.scan(step, state, jax.random.split(key, 3000))[1]

    xs = jax.jit(jax.vmap(scalars_along))(jax.random.split(jax.random.key(11), 4), st)
    ref = np.asarray(xs)[:, 500:].reshape(-1, 2).var(axis=0)
    ratio = np.asarray(new["inverse_mass_matrix"][:2]) / ref
    assert np.all((ratio > 1 / 3) & (ratio < 3)), ratio
    u, lam = np.asarray(new["scalar_U"]), np.asarray(new["scalar_lam"])
    corr = (u * lam) @ u.T
    ref_corr = np.corrcoef(np.asarray(xs)[:, 500:].reshape(-1, 2).T)
    np.testing.assert_allclose(np.diag(corr), 1.0, atol=1e-12)
    expected = (1 - SCALAR_CORR_SHRINK) * ref_corr[0, 1]  # the window's estimate is shrunk towards 0
    assert abs(corr[0, 1] - expected) < 0.1, (corr[0, 1], ref_corr[0, 1])


def test_mclmc_dense_scalar_block_samples_a_correlated_gaussian_faster():
    """MCLMC with the dense scalar block (blackjax's low-rank + diagonal inverse mass, the block set to the
    target's correlation) samples a Gaussian whose two leading coordinates are correlated 0.98 with the
    right mean and covariance. The diagonal mass sees a condition number of ~100 there: at the same step
    size its energy error is far larger, and at a step size small enough for the same energy error its
    wide direction mixes far more slowly."""
    from inference.runner import correlation_eigen
    from inference.samplers.mclmc import inverse_mass

    rho, sd, d = 0.98, np.array([2.0, 0.5]), 40
    cov2 = np.array([[1.0, rho], [rho, 1.0]]) * np.outer(sd, sd)
    prec2 = jnp.asarray(np.linalg.inv(cov2))
    mu = jnp.asarray(np.r_[1.0, -1.0, np.zeros(d - 2)])

    def logdensity(x):
        y = x - mu
        return -0.5 * (y[:2] @ prec2 @ y[:2]) - 0.5 * jnp.sum(y[2:] ** 2)

    s = make_sampler("mclmc", logdensity, {"n_scalars": 2, "dense_scalars": True})
    u, lam = correlation_eigen(cov2, shrink=0.0)
    diag = {"L": jnp.asarray(4.0), "inverse_mass_matrix": jnp.asarray(np.r_[sd**2, np.ones(d - 2)])}
    dense = diag | {"scalar_U": jnp.asarray(u), "scalar_lam": jnp.asarray(lam)}
    # the inverse mass blackjax is given: the scalar block is the covariance, the rest the diagonal
    lr = inverse_mass(dense)
    sig, U = np.diag(np.asarray(lr.sigma)), np.asarray(lr.U)
    full = sig @ (np.eye(d) + U @ np.diag(np.asarray(lr.lam) - 1) @ U.T) @ sig
    np.testing.assert_allclose(full[:2, :2], cov2, rtol=1e-12)
    np.testing.assert_allclose(full[2:, 2:], np.eye(d - 2), atol=1e-12)
    assert np.abs(full[:2, 2:]).max() < 1e-12

    @jax.jit
    def run(params, step_size, keys):
        from blackjax.mcmc.mclmc import init

        p = params | {"step_size": step_size}

        def chain(key):
            def one(st, k):
                st, info = s.step(k, st, p)
                return st, (s.position(st)[:2], info.energy_sq)

            st = init(position=mu, logdensity_fn=logdensity, rng_key=key)
            x, e2 = jax.lax.scan(one, st, jax.random.split(key, 6000))[1]
            return x[500:], jnp.mean(e2[500:]) / d

        return jax.vmap(chain)(keys)

    keys = jax.random.split(jax.random.key(7), 4)
    xd, ed = (np.asarray(v) for v in run(dense, 0.8, keys))
    pooled = xd.reshape(-1, 2)
    np.testing.assert_allclose(pooled.mean(axis=0), [1.0, -1.0], atol=0.15)
    np.testing.assert_allclose(np.cov(pooled.T), cov2, rtol=0.15)
    xg, eg = (np.asarray(v) for v in run(diag, 0.8, keys))
    assert eg.mean() > 20 * ed.mean(), (eg.mean(), ed.mean())
    eps = 0.8
    while eg.mean() > ed.mean():  # the diagonal mass's step size for the same energy error
        eps /= 2
        xg, eg = (np.asarray(v) for v in run(diag, eps, keys))
    wide = lambda x: x[..., 0] / sd[0] + x[..., 1] / sd[1]
    assert ess(wide(xd)) > 3 * ess(wide(xg)), (ess(wide(xd)), ess(wide(xg)), eps)


@pytest.mark.parametrize("name, opts, draws", [("hmc", {"hmc_steps": 8}, 2000), ("mams", {}, 400), ("nuts", {}, 1000),
                                               ("nutsgibbs", {"n_scalars": 3}, 1000)])
def test_adjusted_samplers_count_every_gradient_and_sample_a_gaussian(name, opts, draws):
    """Each adjusted sampler on a 12-d Gaussian with scales 0.1..10 (the warm-up must adapt the mass): its
    StepInfo.n_grads over the sampling equals an independent count of log-density evaluations (a host
    callback inside the log-density), and means and standard deviations agree with the truth to within
    their Monte Carlo error (4 / sqrt(ESS))."""
    dim = 12
    scales = np.geomspace(0.1, 10.0, dim)
    mu = np.linspace(-1.0, 1.0, dim)
    calls = [0]

    def count(_):
        calls[0] += 1

    def logdensity(x):
        jax.debug.callback(count, x[0])
        return -0.5 * jnp.sum(((x - mu) / scales) ** 2)

    s = make_sampler(name, logdensity, opts)
    st, par, _ = jax.jit(lambda k, x: s.warmup(k, x, 300))(jax.random.key(0), jnp.zeros(dim))
    par = s.combine(jax.tree.map(lambda v: v[None], par))

    def one(st, k):
        st, info = s.step(k, st, par)
        return st, (s.position(st), info.n_grads)

    jax.effects_barrier()
    calls[0] = 0
    _, (xs, ng) = jax.jit(lambda st: jax.lax.scan(one, st, jax.random.split(jax.random.key(1), draws)))(st)
    jax.effects_barrier()
    assert int(np.sum(ng)) == calls[0] > draws
    xs = np.asarray(xs)[None]  # (1 chain, draws, dim)
    n_eff = np.array([ess(xs[..., i]) for i in range(dim)])
    assert n_eff.min() > 20, n_eff
    assert np.all(np.abs(xs[0].mean(0) - mu) / scales < 4 / np.sqrt(n_eff)), (xs[0].mean(0) - mu) / scales
    assert np.all(np.abs(xs[0].std(0) / scales - 1) < 4 / np.sqrt(2 * n_eff)), xs[0].std(0) / scales
