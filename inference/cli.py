"""Command line: ``python -m inference mock|sample``.

    python -m inference mock   [--config FILE] --out DIR [--overwrite] [--particles N] [--seed S] [--power P]
    python -m inference sample [--config FILE] --out DIR [--resume] [--data MOCKDIR] [--sampler S] ...

``mock`` writes synthetic data at the config's ``[truth]``: obs.npy (the data, 1 + delta_g per cell),
init_mesh.npy (true delta_L at a = 1), gxy_mesh.npy (noise-free galaxy field), mock.json.
``sample`` samples the posterior of the data in ``data`` (config key or ``--data``; without it a mock
is made first in DIR/mock) and writes the run into DIR (see README, "Inference"). Bad input stops with
one line naming the parameter, exit code 2, before anything is compiled.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from jaxpm.cli import _Parser, _value
from jaxpm.errors import ConfigError

_OVERRIDES = ("particles", "box", "dtype", "seed", "power", "power_table", "evolution", "precond", "sampler",
              "chains", "warmup", "field_warmup", "samples", "thinning", "chunk", "burn_in", "sampler_seed", "data", "latent", "pdims")


def build_parser():
    p = _Parser(prog="python -m inference", description="Field-level inference on the jaxpm engine")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in ("mock", "sample"):
        s = sub.add_parser(name)
        s.add_argument("--config", default=None, help="TOML config (InferConfig keys)")
        s.add_argument("--out", required=True, help="output folder")
        s.add_argument("--overwrite", action="store_true")
        s.add_argument("--quiet", action="store_true")
        for key in _OVERRIDES:
            s.add_argument("--" + key.replace("_", "-"), dest=key, default=None, type=_value)
        if name == "sample":
            s.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    return p


def _setup_jax(cfg):
    import jax

    if cfg.dtype == "float64":
        jax.config.update("jax_enable_x64", True)


def _load(args):
    from .config import InferConfig

    overrides = {k: getattr(args, k) for k in _OVERRIDES}
    if overrides.get("dtype") == "float64" or overrides.get("dtype") is None:
        import jax

        jax.config.update("jax_enable_x64", True)  # needed to validate a float64 domain
    cfg = InferConfig.load(args.config, overrides)
    _setup_jax(cfg)
    return cfg


def make_mock(cfg, out: Path, log):
    import numpy as np

    from jaxpm.io import save_json, save_npy, versions

    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    model = cfg.model()
    data = model.mock({k: float(v) for k, v in cfg.truth.items()}, cfg.seed)
    for key in ("obs", "init_mesh", "gxy_mesh"):
        save_npy(out / f"{key}.npy", np.asarray(data[key]))
    info = {"config": cfg.as_dict(), "truth": cfg.truth, "seed": cfg.seed, "nbar_per_cell": model.nbar,
            "noise_variance": 1.0 / model.nbar, "versions": versions(), "seconds": time.perf_counter() - t0,
            "obs_mean": float(np.mean(data["obs"])), "obs_std": float(np.std(data["obs"]))}
    save_json(out / "mock.json", info)
    log(f"mock: {cfg.particles}^3 in {cfg.box} Mpc/h, nbar {model.nbar:.4g} per cell, truth {cfg.truth} -> {out}")
    return data


def _mock(args) -> int:
    from jaxpm.io import prepare_output_dir

    cfg = _load(args)
    out = prepare_output_dir(args.out, args.overwrite)
    make_mock(cfg, out, _logger(args))
    return 0


def _sample(args) -> int:
    import numpy as np

    from jaxpm.io import prepare_output_dir

    from .outputs import write_outputs
    from .runner import Runner

    cfg = _load(args)
    log = _logger(args)
    out = Path(args.out)
    if args.resume:
        if not (out / "checkpoint.json").is_file():
            raise ConfigError("resume", str(out), "a run folder with checkpoint.json (or run without --resume)")
        saved = json.loads((out / "config.json").read_text())
        if saved != json.loads(json.dumps(cfg.as_dict())):
            raise ConfigError("resume", str(out), "the same config as the interrupted run (see its config.json)")
    else:
        out = prepare_output_dir(args.out, args.overwrite)
        from jaxpm.io import save_json

        save_json(out / "config.json", cfg.as_dict())
    model = cfg.model()
    if cfg.data is not None:
        data_dir = Path(cfg.data)
        truth = json.loads((data_dir / "mock.json").read_text()).get("truth") if (data_dir / "mock.json").is_file() else None
    else:
        data_dir = out / "mock"
        if not (data_dir / "obs.npy").is_file():
            make_mock(cfg, data_dir, log)
        truth = cfg.truth
    obs = np.load(data_dir / "obs.npy")
    if obs.shape != model.domain.particles:
        raise ConfigError("data", str(data_dir), f"data of shape {model.domain.particles} (found {obs.shape})")
    true_field = np.load(data_dir / "init_mesh.npy") if (data_dir / "init_mesh.npy").is_file() else None
    runner = Runner(model, obs, cfg.run_spec(), out, log=log, truth=truth, fixed=cfg.fixed_values())
    result = runner.run(resume=args.resume)
    summary = write_outputs(out, cfg, model, result, truth, true_field, log)
    for g, row in summary["summary"]["groups"].items():
        log(f"{g:6s} ESS {row['ess']:8.1f}  R-hat max {row['rhat_max']:.3f}  gradient evaluations / ESS {row['evals_per_ess']:10.1f}")
    for n, row in summary["summary"]["parameters"].items():
        t = f"  truth {row['truth']:.4f}" if "truth" in row else ""
        log(f"{n:8s} {row['mean']:.4f} +- {row['std']:.4f}  ESS {row['ess']:7.1f}  R-hat {row['rhat']:.3f}{t}")
    conv = summary["convergence"]
    if not conv["converged"]:
        log("NOT CONVERGED: " + "; ".join(conv["problems"]) + ". These are not posterior estimates yet: "
            "run again with more `samples` (and `warmup`), e.g. --samples 1024 --warmup 1024.")
    log(f"outputs in {out}")
    return 0


def _logger(args):
    if getattr(args, "quiet", False):
        return lambda s: None
    return lambda s: print(s, file=sys.stderr, flush=True)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return {"mock": _mock, "sample": _sample}[args.command](args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
