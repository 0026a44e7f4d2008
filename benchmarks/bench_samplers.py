"""Sampler leaderboard at the reference configuration (Simon-Onfroy+2025 sampler table).

Default: 64^3 in 320 Mpc/h (5 Mpc/h cells), a = 0.5, 1LPT, RSD along z, Lagrangian bias, nbar = 1e-3
(h/Mpc)^3, dynamic Kaiser preconditioning, float64, truth (0.3, 0.8, 1, 0, 0, 0), 8 chains vmapped on
one device. For each sampler: warm-up, then chunks until sigma8 has --ess-target effective samples or
the sampler's time budget is spent. Reported per sampler:

- gradient evaluations per effective sample for cosmo, bias and field (reference definitions: warm-up
  and burn-in excluded, MCLMC burn-in = the reference's first 100 stored draws; the field group = the
  harmonic mean over --voxels random voxels of delta_L, 10 as the reference; more voxels estimate the same
  population harmonic mean with less scatter, which matters when a few voxels mix far more slowly),
  beside the reference table;
- wall time to --ess-target ESS of sigma8: warm-up + sampling until the target, without compilation
  (compilation times are reported separately); null if not reached in the budget;
- posterior means, std, R-hat; the energy error (MCLMC) or acceptance.

Writes ``benchmarks/results/samplers_<device>_<UTC time>.json``. Example (one H200, ~8 minutes):

    python benchmarks/bench_samplers.py --samplers mclmc --budget 420
    python benchmarks/bench_samplers.py --samplers nuts --budget 420 --chains 8 --warmup 256 --thinning 1

A run longer than one job: ``--keep DIR`` in the first, the same arguments + ``--resume`` in the next (the
runner's exact resume; each job adds --budget seconds; the time to --ess-target is kept from the job that
reached it; each job writes its own JSON, the last one holding all draws).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

REFERENCE = {  # Simon-Onfroy+2025 sampler table, 64^3 1LPT RSD+bias Kaiser (notes section c)
    "mclmc": {"cosmo": 1006, "bias": 1329, "field": 64},
    "nuts": {"cosmo": 15149, "bias": 14436, "field": 456},
}
DEFAULTS = {  # per sampler: warm-up transitions, thinning, burn-in (stored draws left out, as the reference's 100)
    "mclmc": (1024, 16, 100), "mams": (512, 1, 0), "nuts": (256, 1, 0), "hmc": (256, 1, 0), "nutsgibbs": (128, 1, 0),
}


def main(argv=None):
    t_process = time.perf_counter()
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mesh", type=int, default=64)
    p.add_argument("--cell", type=float, default=5.0, help="cell size [Mpc/h] (box = mesh x cell)")
    p.add_argument("--samplers", default="mclmc,nuts", help="comma list of mclmc,mams,nuts,hmc,nutsgibbs")
    p.add_argument("--chains", type=int, default=8)
    p.add_argument("--warmup", type=int, default=None, help="warm-up transitions (default per sampler)")
    p.add_argument("--thinning", type=int, default=None)
    p.add_argument("--burn-in", type=int, default=None, help="stored draws per chain left out (default per sampler)")
    p.add_argument("--field-warmup", type=int, default=None,
                   help="field-only warm-up transitions before the joint one (default: MCLMC 1024 as the reference, else 0)")
    p.add_argument("--chunk", type=int, default=16, help="stored draws per chunk (ESS checked after each)")
    p.add_argument("--max-samples", type=int, default=4096, help="stored draws per chain at most")
    p.add_argument("--ess-target", type=float, default=100.0, help="ESS of sigma8 whose wall time is reported")
    p.add_argument("--run-ess", type=float, default=None,
                   help="keep sampling until ESS(sigma8) reaches this (default --ess-target): longer runs give "
                        "steadier evaluations per effective sample; the time to --ess-target is still recorded")
    p.add_argument("--budget", type=float, default=420.0, help="seconds of warm-up + sampling per sampler")
    p.add_argument("--deadline", type=float, default=None,
                   help="seconds of this process's wall time (compilation included) after which sampling stops at the "
                        "next chunk and results are written: for jobs with a hard time limit")
    p.add_argument("--dtype", default="float64")
    p.add_argument("--lpt-order", type=int, default=1)
    p.add_argument("--precond", default="kaiser_dyn")
    p.add_argument("--target-eevpd", type=float, default=1e-6)
    p.add_argument("--pilot-evals-per-ess", type=float, default=None)
    p.add_argument("--mass-windows", type=int, default=2,
                   help="MCLMC: refreshes of the scalars' inverse mass from draws pooled over chains (0: blackjax's)")
    p.add_argument("--mass-window-steps", type=int, default=256)
    p.add_argument("--dense-scalars", action="store_true",
                   help="MCLMC: the mass windows also set the scalars' correlations (a dense scalar block)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--voxels", type=int, default=10,
                   help="random real-space voxels of delta_L tracked for the field group (the reference: ~10)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--keep", default=None,
                   help="keep each sampler's run folder (chains, summary, figures) under KEEP/<sampler> (default: a temporary one)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run folders under --keep from their checkpoints (a run longer than one job), with "
                        "--budget more seconds; same arguments as the first job; a sampler without a folder starts fresh")
    args = p.parse_args(argv)
    if args.resume and not args.keep:
        p.error("--resume needs --keep (the folder holding the run folders to continue)")
    if args.run_ess is not None and args.run_ess < args.ess_target:
        p.error(f"--run-ess {args.run_ess} is below --ess-target {args.ess_target}")
    for name in args.samplers.split(","):  # before any compilation
        if name not in DEFAULTS:
            p.error(f"--samplers: unknown sampler {name!r} (one of {', '.join(DEFAULTS)})")
        if args.keep and (Path(args.keep) / name).exists() and not args.resume:
            p.error(f"--keep: {Path(args.keep) / name} exists; choose another folder or --resume (nothing is overwritten)")

    import jax

    if args.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    import numpy as np

    from inference.config import InferConfig
    from inference.diagnostics import ess, group_ess, rhat
    from inference.outputs import write_outputs
    from inference.runner import Runner, spent_seconds
    from jaxpm.io import device_info, save_json, versions

    results = {"config": vars(args), "reference": REFERENCE, "versions": versions(), "device": device_info(),
               "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "samplers": {}}
    dev = results["device"]["kind"].replace(" ", "-").lower()
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H%M")
    out_file = Path(args.out) / f"samplers_{dev}_{args.mesh}_{stamp}.json"
    i = 1
    while out_file.exists():  # two runs started in the same minute: never overwrite the other's results
        i += 1
        out_file = Path(args.out) / f"samplers_{dev}_{args.mesh}_{stamp}-{i}.json"
    out_file.parent.mkdir(parents=True, exist_ok=True)
    for name in args.samplers.split(","):
        warm, thin, burn = DEFAULTS[name]
        warm = args.warmup or warm
        thin = args.thinning or thin
        burn = burn if args.burn_in is None else args.burn_in
        field_warm = (1024 if name == "mclmc" else 0) if args.field_warmup is None else args.field_warmup
        n_chunks = max(1, (args.max_samples + burn) // args.chunk)
        cfg = InferConfig.from_mapping(dict(
            particles=args.mesh, box=args.mesh * args.cell, dtype=args.dtype, lpt_order=args.lpt_order,
            precond=args.precond, sampler=name, chains=args.chains, warmup=warm, field_warmup=field_warm, thinning=thin,
            chunk=args.chunk, samples=n_chunks * args.chunk, burn_in=burn, seed=args.seed, target_eevpd=args.target_eevpd,
            pilot_evals_per_ess=args.pilot_evals_per_ess, mass_windows=args.mass_windows,
            mass_window_steps=args.mass_window_steps, dense_scalars=args.dense_scalars, n_voxels=args.voxels)).validate()
        model = cfg.model()
        t0 = time.perf_counter()
        mock = model.mock({k: float(v) for k, v in cfg.truth.items()}, cfg.seed)
        obs = np.asarray(mock["obs"])
        t_mock = time.perf_counter() - t0
        names = model.names
        i_s8 = names.index("sigma8")
        folder = Path(args.keep) / name if args.keep else None
        spent = spent_seconds(folder) if args.resume else None  # warm-up + sampling seconds of earlier jobs
        resume = spent is not None
        spent = spent or 0.0
        target_file = folder / "time_to_target.json" if folder else None
        reached = json.loads(target_file.read_text()) if resume and target_file.exists() else {}
        run_ess = args.ess_target if args.run_ess is None else args.run_ess
        live = {}  # the runner, once built: its timings so far give the time to the target

        def stop_when(d):
            late = args.deadline is not None and time.perf_counter() - t_process > args.deadline
            if d["scalars"].shape[1] < 4:  # still in the burn-in
                return late
            e = group_ess([d["scalars"][..., i_s8]])
            if e >= args.ess_target and "time_s" not in reached:
                t = live["runner"].timings
                reached.update(ess=e, draws=int(d["scalars"].shape[1]), time_s=t.get("warmup_s", 0.0) + t.get("sampling_s", 0.0))
                if target_file is not None:  # a resumed job keeps the first job's time to the target
                    save_json(target_file, reached)
            return e >= run_ess or late

        with contextlib.nullcontext(str(folder)) if folder else tempfile.TemporaryDirectory() as tmp:
            runner = Runner(model, obs, cfg.run_spec(), Path(tmp), log=lambda s: print(f"[{name}] {s}", flush=True),
                            truth=cfg.truth)
            live["runner"] = runner
            ms_grad = _gradient_ms(runner, model, args.chains)
            print(f"[{name}] one gradient of the log-density, {args.chains} chains vmapped: {ms_grad:.2f} ms", flush=True)
            if resume:
                print(f"[{name}] resuming {folder} after {spent:.0f} s of warm-up + sampling", flush=True)
            res = runner.run(resume=resume, stop_when=stop_when, time_budget_s=spent + args.budget)
            try:
                summary = write_outputs(Path(tmp), cfg, model, res, cfg.truth, np.asarray(mock["init_mesh"]),
                                        log=lambda s: None)
            except ValueError as err:  # e.g. a deadline inside the burn-in: no draws to summarise
                summary, error = None, str(err)
        t = res["timings"]
        seconds = {"mock": t_mock, "warmup_compile": t.get("warmup_compile_s"), "chunk_compile": t.get("chunk_compile_s"),
                   "warmup": t.get("warmup_s"), "sampling": t.get("sampling_s")}
        if summary is None:  # the record of what was spent still goes into the JSON
            results["samplers"][name] = {"error": error, "draws_per_chain": int(res["draws"]["scalars"].shape[1]),
                                         "burn_in_draws": burn, "seconds": seconds, "n_grads_warmup": t.get("warmup_grads")}
            print(f"[{name}] no summary: {error}", flush=True)
            save_json(out_file, results)
            continue
        s = summary["summary"]
        vox = res["draws"]["voxels"]  # (chains, draws, n_voxels): which tracked voxels limit the field group
        voxels = {"index": [int(i) for i in res["voxel_index"]], "ess": [ess(vox[..., i]) for i in range(vox.shape[-1])],
                  "rhat": [rhat(vox[..., i]) for i in range(vox.shape[-1])]}
        voxels |= {"ess_median": float(np.median(voxels["ess"])), "n_rhat_above_1.01": int(np.sum(np.array(voxels["rhat"]) > 1.01)),
                   "n": len(voxels["ess"])}
        row = {
            "dim": model.dim, "resumed_after_s": spent if resume else None, "chains": args.chains, "warmup": warm, "field_warmup": field_warm, "thinning": thin, "burn_in_draws": burn,
            "draws_per_chain": int(res["draws"]["scalars"].shape[1]),
            "evals_per_ess": {g: s["groups"][g]["evals_per_ess"] for g in ("cosmo", "bias", "field")},
            "ess": {g: s["groups"][g]["ess"] for g in ("cosmo", "bias", "field")},
            "rhat_max": {g: s["groups"][g]["rhat_max"] for g in ("cosmo", "bias", "field")},
            "ess_sigma8": s["parameters"]["sigma8"]["ess"],
            "parameters": s["parameters"], "field_voxels": voxels,
            "tuned": _tuned(runner.params, len(model.free_names())),
            "ms_per_gradient_all_chains": ms_grad, "calibration_rounds": t.get("calibration_rounds"),
            "n_grads_sampling": s["n_grads"], "n_grads_warmup": t.get("warmup_grads"),
            "n_grads_burn_in": summary["n_grads_burn_in"],
            "seconds": seconds,
            "time_to_target_s": reached.get("time_s"), "draws_at_target": reached.get("draws"),
            "time_to_target_note": "warm-up + burn-in + sampling until ESS(sigma8) >= --ess-target, compilation excluded",
            "eevpd_mean": summary["eevpd_mean"], "acceptance_mean": summary["acceptance_mean"],
            "alarms": summary["alarms"][:20], "n_alarms": len(summary["alarms"]),
        }
        results["samplers"][name] = row
        print(json.dumps({name: {k: row[k] for k in ("evals_per_ess", "ess_sigma8", "time_to_target_s", "seconds")}},
                         indent=1), flush=True)
        save_json(out_file, results)  # after every sampler: a killed job keeps what it measured
    print(f"wrote {out_file}")


def _tuned(params, n_free):
    """The tuned scalars of a sampler's parameters for the JSON: step size, L, ..., the scalars' inverse-mass
    entries (the first ``n_free`` of the diagonal) and correlation, not the field's; per block for
    NUTS-within-Gibbs (``{"field": {...}, "scalars": {...}}``)."""
    if not isinstance(params, dict):
        return None
    if any(isinstance(v, dict) for v in params.values()):
        return {k: _tuned(v, n_free if k == "scalars" else 0) for k, v in params.items() if isinstance(v, dict)}
    import numpy as np

    out = {k: float(v) for k, v in params.items() if np.ndim(v) == 0}
    if n_free and np.ndim(params.get("inverse_mass_matrix")) == 1:
        out["inverse_mass_matrix"] = np.asarray(params["inverse_mass_matrix"])[:n_free].tolist()
    return out | {k: np.asarray(v).tolist() for k, v in params.items() if k.startswith("scalar_")}


def _gradient_ms(runner, model, chains, reps=20):
    """Median wall time [ms] of one vmapped gradient of the log-density over ``chains`` positions (the
    unit every sampler's cost is made of), at Kaiser-initialised positions."""
    import jax

    x = model.kaiser_init(runner.k_init, runner.obs, chains, runner.fixed)
    f = jax.jit(jax.vmap(jax.value_and_grad(runner.logdensity))).lower(x).compile()
    jax.block_until_ready(f(x))
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        jax.block_until_ready(f(x))
        times.append(time.perf_counter() - t0)
    return 1e3 * sorted(times)[len(times) // 2]


if __name__ == "__main__":
    main()
