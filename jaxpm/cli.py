"""Command line: ``python -m jaxpm simulate`` and ``python -m jaxpm power``.

Bad input is reported as one line naming the parameter, the value and what is allowed, with exit
code 2, before anything is compiled.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .errors import ConfigError, MigrationOverflow

__all__ = ["main"]

EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse's default prints the whole usage)
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see --help)\n")


def _value(text: str):
    """Numbers as numbers, anything else as given (the config validation names what is wrong)."""
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text


_DIST_HELP = ("how processes find each other: auto (default: SLURM step, mpiexec or $JAXPM_COORDINATOR, else one "
              "process), slurm, mpi, coordinator ($JAXPM_COORDINATOR, $JAXPM_NUM_PROCESSES, $JAXPM_PROCESS_ID) or none")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m jaxpm", description="Distributed, differentiable particle-mesh simulations.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = sub.add_parser("simulate", help="run a PM simulation (defaults: 64^3 in 128 Mpc/h, 2LPT at a=0.1, 10 FastPM steps to z=0)")
    s.add_argument("--config", help="TOML file with the same keys as these flags (flags override it)")
    g = s.add_argument_group("domain")
    g.add_argument("--particles", type=_value, help="particles per side N, even (default 64)")
    g.add_argument("--B", type=_value, help="force mesh = B x N cells per side (default 1)")
    g.add_argument("--box", type=_value, help="box side [Mpc/h] (default 128)")
    g.add_argument("--dtype", help="float32 (default) or float64")
    g.add_argument("--pdims", help="device grid px,py (default: all devices of all processes, most square split)")
    g.add_argument("--halo", type=_value, help="halo width in force-mesh cells for several devices (default: 1/8 of a block side, >= 2)")
    g.add_argument("--capacity", type=_value, help="particle-migration buffer per device, fraction of its particles (default 0.05)")
    g = s.add_argument_group("time stepping")
    g.add_argument("--steps", type=_value, help="number of steps (default 10)")
    g.add_argument("--stepper", help="fastpm (default), bullfrog, leapfrog, or adaptive dopri5 / tsit5 / dopri8")
    g.add_argument("--spacing", help="steps uniform in a (default), loga or growth (D1; BullFrog's natural choice)")
    g.add_argument("--lpt-order", dest="lpt_order", type=_value, help="1 or 2 (default 2)")
    g.add_argument("--a-init", dest="a_init", type=_value, help="scale factor of the initial conditions (default 0.1; 0 with bullfrog: start from rest)")
    g.add_argument("--z", help="comma-separated output redshifts (default 0)")
    g.add_argument("--rtol", type=_value, help="relative tolerance of adaptive steppers (default 1e-5)")
    g.add_argument("--atol", type=_value, help="absolute tolerance of adaptive steppers (default 1e-5)")
    g.add_argument("--grad", action="store_const", const=True, default=None,
                   help="also compute the gradient of the summed z_min P(k) w.r.t. the white noise, Omega_m and sigma8")
    g.add_argument("--autodiff", help="how --grad differentiates the steps: checkpoint (default), adjoint (memory "
                   "independent of the number of steps, ~3x a forward run) or store (fastest, most memory)")
    g = s.add_argument_group("forces")
    g.add_argument("--paint", help="mass assignment: ngp, cic (default) or tsc")
    g.add_argument("--gradient", help="force gradient kernel: exact, fd2 or fd4 (default)")
    g.add_argument("--laplace", help="Laplacian kernel: exact or fd2 (default)")
    g.add_argument("--compensate", help="deconvolve the mass-assignment window in the force: auto (B=1 only, default), true, false")
    g = s.add_argument_group("initial conditions and cosmology (default Planck 2018)")
    g.add_argument("--seed", type=_value, help="white-noise seed (default 0)")
    g.add_argument("--power", help="linear P(k): eisenstein_hu (default), cosmopower (CLASS emulator, needs the "
                   "[cosmopower] extra) or table (with --power-table)")
    g.add_argument("--power-table", dest="power_table", help="linear P(k) at z=0 as a text table (k [h/Mpc], P [(Mpc/h)^3]); implies --power table")
    g.add_argument("--amplitude", help="normalise P(k) to sigma8 (default), to A_s (cosmopower, with --ln10As) or "
                   "keep the table's own (table)")
    g.add_argument("--ln10As", dest="ln10As", type=_value, help="ln(10^10 A_s), with --amplitude A_s")
    for name in ("Omega_m", "Omega_b", "h", "n_s", "sigma8", "w0", "wa"):
        g.add_argument("--" + name.replace("_", "-"), dest=name, type=_value, help=name)
    g = s.add_argument_group("output")
    g.add_argument("--out", help="output folder (default: a new runs/<UTC time>/)")
    g.add_argument("--overwrite", action="store_true", help="allow writing into a non-empty --out")
    g.add_argument("--checkpoint-every", dest="checkpoint_every", type=_value,
                   help="write a restart checkpoint (sharded, atomic) into OUT/checkpoint every this many steps")
    g.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    g.add_argument("--no-fields", dest="no_fields", action="store_true", help="write summary.json and figure.png only")
    g.add_argument("--quiet", action="store_true", help="no progress lines")
    s.add_argument("--distributed", help=_DIST_HELP)

    w = sub.add_parser("power", help="P(k) of a saved 3D field (.npy)")
    w.add_argument("field", help="a .npy file holding a 3D density contrast")
    w.add_argument("--box", type=_value, required=True, help="box side [Mpc/h]")
    w.add_argument("--compensate", default=None, help="divide out this mass-assignment window: ngp, cic or tsc")
    w.add_argument("--shot-noise", dest="shot_noise", type=_value, default=0.0, help="subtract this constant [(Mpc/h)^3]")
    w.add_argument("--los", type=_value, default=None, help="line-of-sight axis 0/1/2: print multipoles 0, 2, 4")
    w.add_argument("--out", default=None, help="text file for the table (default: FIELD with suffix _pk.txt)")
    w.add_argument("--overwrite", action="store_true", help="replace an existing output table")
    w.add_argument("--distributed", default="auto", help=_DIST_HELP)
    return p


class Progress:
    """Prints one line per finished step with elapsed time and an estimate of the time left."""

    def __init__(self, stream=sys.stderr):
        self.stream = stream
        self.t0 = None
        self.tty = hasattr(stream, "isatty") and stream.isatty()

    def start(self):
        self.t0 = time.perf_counter()

    def __call__(self, step: int, total: int, a: float):
        elapsed = time.perf_counter() - (self.t0 or time.perf_counter())
        left = elapsed / step * (total - step)
        line = f"step {step:>4d}/{total}  a = {a:.4f}  z = {1 / a - 1:7.3f}  elapsed {elapsed:7.2f} s  left ~{left:7.2f} s"
        end = "\r" if (self.tty and step < total) else "\n"
        print(line, end=end, file=self.stream, flush=True)


def _simulate(args) -> int:
    import jax
    import jax.numpy as jnp

    from .config import SimConfig, load_toml

    t_start = time.perf_counter()
    flags = {k: v for k, v in vars(args).items() if k not in ("command", "config", "out", "overwrite", "no_fields", "quiet", "resume")}
    base = SimConfig.from_mapping(load_toml(args.config)) if args.config else SimConfig()
    cfg = base.updated(flags)
    from .distributed import initialize, is_coordinator, on_coordinator

    initialize(cfg.distributed)  # before any JAX computation; a no-op on one process
    if cfg.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    cfg.validate()
    # everything that can reject the input (including parsing a power table) before any folder is made
    domain, cosmo, spec = cfg.domain(), cfg.cosmology(), cfg.force_spec()
    if args.resume:
        if not args.out or not (Path(args.out) / "checkpoint").is_dir() and not Path(args.out, "checkpoint.old").is_dir():
            raise ConfigError("resume", args.out, "--out naming the folder of a run written with --checkpoint-every")
        if not cfg.checkpoint_every:
            raise ConfigError("checkpoint_every", cfg.checkpoint_every, "the run's checkpoint interval when resuming")
        outdir = Path(args.out)
    else:
        outdir = Path(on_coordinator(lambda: str(_prepare(args))))  # one folder, chosen by process 0

    from . import io as jio
    from .cosmology import growth_table
    from .forces import density
    from .ics import linear_field, white_noise
    from .observables import domain_modes, power_spectrum
    from .plotting import run_figure
    from .restart import run_checkpointed
    from .shardio import save_sharded
    from .simulation import make_time_grid, simulate

    a_out = cfg.a_out
    grid, _ = make_time_grid(cosmo, cfg.a_init, a_out, cfg.steps, cfg.spacing)
    # force evaluations: KDK steppers one per step plus the initial one, BullFrog one per step
    n_force = {"fastpm": len(grid), "leapfrog": len(grid), "bullfrog": len(grid) - 1}.get(cfg.stepper)
    say = (lambda *m: None) if args.quiet or not is_coordinator() else (lambda *m: print(*m, file=sys.stderr, flush=True))
    say(f"jaxpm: {cfg.particles}^3 particles, box {cfg.box} Mpc/h, B = {cfg.B}, {cfg.stepper} "
        f"{len(grid) - 1 if n_force else 'adaptive'} steps from a = {cfg.a_init} to z = {', '.join(f'{z:g}' for z in sorted(cfg.z, reverse=True))}, "
        f"{cfg.dtype}, on {jax.devices()[0].device_kind} x{jax.device_count()}")

    timings = {}
    t = time.perf_counter()
    lin = jax.jit(lambda c: linear_field(domain, c, white_noise(domain, cfg.seed)))(cosmo)
    lin = jax.block_until_ready(lin)
    timings["initial_conditions_s"] = time.perf_counter() - t

    progress = None if args.quiet or not is_coordinator() else Progress()

    def run(c, field):
        snaps = simulate(domain, c, field, a_init=cfg.a_init, a_out=a_out, steps=cfg.steps, stepper=cfg.stepper,
                         spacing=cfg.spacing, lpt_order=cfg.lpt_order, force=spec, a_grid=grid if n_force else None,
                         progress=progress, rtol=cfg.rtol, atol=cfg.atol)
        return [density(domain, s.dx, "cic") - 1.0 for s in snaps]

    if cfg.checkpoint_every:  # chunks of steps, a restart checkpoint after every `checkpoint_every`
        layout_keys = ("pdims", "halo", "capacity", "distributed", "checkpoint_every", "grad", "autodiff")
        meta = {k: v for k, v in cfg.as_dict().items() if k not in layout_keys}
        timings["compile_s"] = 0.0
        if progress:
            progress.start()
        t = time.perf_counter()
        snaps = run_checkpointed(domain, cosmo, lin, directory=outdir / "checkpoint", every=cfg.checkpoint_every,
                                 resume=bool(args.resume), a_init=cfg.a_init, a_out=a_out, steps=cfg.steps,
                                 stepper=cfg.stepper, spacing=cfg.spacing, lpt_order=cfg.lpt_order, force=spec,
                                 progress=progress, meta=meta,
                                 on_checkpoint=lambda j: say(f"checkpoint at step {j} in {outdir / 'checkpoint'}"))
        deltas = jax.block_until_ready(jax.jit(lambda xs: [density(domain, x, "cic") - 1.0 for x in xs])([s.dx for s in snaps]))
        timings["run_s"] = time.perf_counter() - t
    else:
        t = time.perf_counter()
        compiled = jax.jit(run).lower(cosmo, lin).compile()
        timings["compile_s"] = time.perf_counter() - t
        say(f"compiled in {timings['compile_s']:.1f} s; running")
        if progress:
            progress.start()
        t = time.perf_counter()
        deltas = jax.block_until_ready(compiled(cosmo, lin))
        timings["run_s"] = time.perf_counter() - t

    from .halo import check_migration

    check_migration()  # a distributed run that lost particles stops here with the remedy
    t = time.perf_counter()
    d1_out = jax.jit(lambda c: growth_table(c).D1(jnp.asarray(a_out)))(cosmo)
    plin = jax.jit(lambda c, k: c.linear_power(k))
    outputs, spectra, linear = [], [], []
    for a, d1, delta in zip(a_out, d1_out, deltas):
        z = 1.0 / a - 1.0
        ps = power_spectrum(delta, domain.box, compensate="cic", modes=domain_modes(domain))
        fname = None
        if not args.no_fields:
            fname = f"delta_z{z:.3f}.npy"
            save_sharded(outdir / fname, delta, overwrite=True)  # every process writes its shards
        outputs.append({"a": a, "z": z, "file": fname, "k": ps.k, "pk": ps.power, "n_modes": ps.n_modes})
        spectra.append((f"z = {z:.3g}", ps.k, ps.power))
        linear.append((f"linear z = {z:.3g}", ps.k, float(d1) ** 2 * plin(cosmo, ps.k)))
    outputs.sort(key=lambda o: -o["z"])
    if not args.no_fields:
        save_sharded(outdir / "ic_linear.npy", lin, overwrite=True)
    # the figure's slab (x-y, summed over a few z planes), made where the field lives, then replicated
    thick = max(1, domain.mesh_shape[2] // 16)
    replicated = None if not domain.distributed else jax.sharding.NamedSharding(domain.device_mesh, jax.sharding.PartitionSpec())
    slab = jax.jit(lambda d: d[:, :, :thick].mean(axis=2), out_shardings=replicated)(deltas[-1])
    if is_coordinator():
        run_figure(outdir / "figure.png", slab, domain.box, spectra, linear,
                   title=f"{cfg.particles}^3 particles, {cfg.box} Mpc/h, B={cfg.B}, {cfg.stepper} {cfg.steps} steps, seed {cfg.seed}")
    timings["write_s"] = time.perf_counter() - t
    gradient = _gradient(cfg, domain, cosmo, spec, grid, a_out, timings, outdir, args, say) if cfg.grad else None
    timings["total_s"] = time.perf_counter() - t_start
    summary = {
        "config": cfg.as_dict(),
        "domain": domain.describe(),
        "cosmology": cosmo.as_dict(),
        "versions": jio.versions(),
        "device": jio.device_info(),
        "timings": timings,
        "n_force_evaluations": n_force,
        "gradient": gradient,
        "conventions": {
            "k": "h/Mpc", "pk": "(Mpc/h)^3, CIC-compensated, no shot-noise subtraction",
            "delta files": "density contrast on the force mesh (B*N per side), CIC, not compensated; cell j centred at (j+1/2) L/(B N)",
            "ic_linear.npy": "linear density contrast at a=1 on the particle grid, value i at q = i L/N",
        },
        "outputs": outputs,
    }
    if is_coordinator():
        jio.save_json(outdir / "summary.json", summary)
        say(f"done in {timings['total_s']:.1f} s (compile {timings['compile_s']:.1f} s, run {timings['run_s']:.2f} s); outputs in {outdir}/")
        print(outdir)
    return 0


def _gradient(cfg, domain, cosmo, spec, grid, a_out, timings, outdir, args, say):
    """d/d(noise, Omega_m, sigma8) of the sum of the P(k) bins at the last output; written to the run."""
    import jax
    import jax.numpy as jnp

    from .forces import density
    from .ics import linear_field, white_noise
    from .observables import domain_modes, power_spectrum
    from .simulation import simulate

    def loss(noise, om, s8):
        c = cosmo.replace(Omega_m=om, sigma8=s8)
        snaps = simulate(domain, c, linear_field(domain, c, noise), a_init=cfg.a_init, a_out=a_out, steps=cfg.steps,
                         stepper=cfg.stepper, lpt_order=cfg.lpt_order, force=spec, a_grid=grid, autodiff=cfg.autodiff)
        delta = density(domain, snaps[-1].dx, "cic") - 1.0
        return jnp.sum(power_spectrum(delta, domain.box, compensate="cic", drop_empty=False, modes=domain_modes(domain)).power)

    noise = white_noise(domain, cfg.seed)
    t = time.perf_counter()
    compiled = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2))).lower(noise, cfg.Omega_m, cfg.sigma8).compile()
    timings["grad_compile_s"] = time.perf_counter() - t
    say(f"gradient ({cfg.autodiff}) compiled in {timings['grad_compile_s']:.1f} s; running")
    t = time.perf_counter()
    value, (g_noise, g_om, g_s8) = jax.block_until_ready(compiled(noise, cfg.Omega_m, cfg.sigma8))
    timings["grad_s"] = time.perf_counter() - t
    mem = compiled.memory_analysis()
    fname = None
    if not args.no_fields:
        fname = "grad_noise.npy"
        from .shardio import save_sharded

        save_sharded(outdir / fname, g_noise, overwrite=True)
    return {
        "loss": "sum over bins of the CIC-compensated P(k) [(Mpc/h)^3] at the last output",
        "autodiff": cfg.autodiff, "value": float(value), "d_Omega_m": float(g_om), "d_sigma8": float(g_s8),
        "d_noise_file": fname, "d_noise_rms": float(jnp.sqrt(jnp.mean(g_noise**2))),
        "compiled_temp_bytes": getattr(mem, "temp_size_in_bytes", None),
    }


def _prepare(args):
    from .io import prepare_output_dir

    return prepare_output_dir(args.out, args.overwrite)


def _power(args) -> int:
    import numpy as np

    from .distributed import initialize, is_coordinator
    from .io import atomic_write
    from .observables import power_spectrum

    initialize(args.distributed)  # before any JAX computation; every process computes, process 0 writes
    path = Path(args.field)
    if not path.is_file():
        raise ConfigError("field", args.field, "an existing .npy file")
    if not isinstance(args.box, (int, float)) or args.box <= 0:
        raise ConfigError("box", args.box, "a positive box side in Mpc/h")
    out = Path(args.out) if args.out else path.with_name(path.stem + "_pk.txt")
    if out.exists() and not args.overwrite and is_coordinator():  # only process 0 writes it
        raise ConfigError("out", str(out), "a file that does not exist yet, or add --overwrite")
    try:
        field = np.load(path)
    except (OSError, ValueError) as exc:
        raise ConfigError("field", args.field, f"a readable .npy file ({exc})") from None
    if field.ndim != 3:
        raise ConfigError("field", f"{args.field} of shape {field.shape}", "a 3D array")
    ps = power_spectrum(field, args.box, compensate=args.compensate, shot_noise=float(args.shot_noise), los=args.los)
    if args.los is None:
        header = "k [h/Mpc]   P(k) [(Mpc/h)^3]   n_modes"
        table = np.column_stack([ps.k, ps.power, ps.n_modes])
    else:
        header = "k [h/Mpc]   P0   P2   P4 [(Mpc/h)^3]   n_modes"
        table = np.column_stack([ps.k, *np.asarray(ps.power), ps.n_modes])
    header = f"P(k) of {path.name}, box {args.box} Mpc/h, compensate={args.compensate}, shot noise {args.shot_noise}\n" + header
    if not is_coordinator():
        return 0
    atomic_write(out, lambda fh: np.savetxt(fh, table, header=header, fmt="%.6e"))
    print("# " + header.replace("\n", "\n# "))
    for row in table:
        print("  ".join(f"{v:.6e}" for v in row))
    print(f"# saved to {out}", file=sys.stderr)
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "simulate":
            return _simulate(args)
        return _power(args)
    except ConfigError as exc:
        print(f"python -m jaxpm {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except MigrationOverflow as exc:
        print(f"python -m jaxpm {args.command}: error: {exc}", file=sys.stderr)
        return 3
