"""Compiled memory (and optionally time) of the forward run vs its reverse-time adjoint gradient.

Uses the problem of ``benchmarks/bench_adjoint.py`` (2LPT + S FastPM steps, float32, gradient of
``mean(dx^2)`` with respect to the white noise) and XLA's memory analysis of the compiled programs
(argument + output + temp - alias, what the device must hold), so the memory ratio that the adjoint
issue targets (<= 2x) can be read on a CPU. ``--pieces`` adds the single force pieces the backward
step is made of (force, force + meshes, hand-written force VJP). ``--reps 0`` skips the timing.

    python benchmarks/tools/adjoint_memory_breakdown.py --sizes 64,128 --steps 10,40 --reps 2
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from bench_adjoint import _mem, _time, problem  # noqa: E402

MiB = 2.0**-20


def _parts(compiled):
    m = compiled.memory_analysis()
    return {"arg": m.argument_size_in_bytes, "out": m.output_size_in_bytes, "temp": m.temp_size_in_bytes,
            "alias": m.alias_size_in_bytes, "total": _mem(compiled)}


def run(N, steps, mode="adjoint", reps=0):
    forward, loss, noise = problem(N, steps, mode)
    row = {}
    for name, fn in (("forward", forward), ("grad", jax.grad(loss))):
        compiled = jax.jit(fn).lower(noise).compile()
        row[name] = _parts(compiled)
        if reps:
            row[name]["time_s"] = _time(compiled, (noise,), reps)[0]
    return row


def pieces(N):
    """Compiled memory of one force, force + meshes, the force VJP and the fused force + VJP (the KDK
    adjoint's step) at N^3 (float32, B = 1)."""
    from jaxpm import Domain
    from jaxpm.forces import ForceSpec, pm_forces, pm_forces_and_meshes, pm_forces_and_vjp, pm_forces_vjp

    d, spec = Domain.create(N, float(N)), ForceSpec()
    x = jax.ShapeDtypeStruct(d.particles + (3,), d.real_dtype)
    m = jax.ShapeDtypeStruct((3,) + d.mesh_shape, d.real_dtype)
    fns = {"pm_forces": (lambda dx: pm_forces(d, dx, spec), (x,)),
           "pm_forces_and_meshes": (lambda dx: pm_forces_and_meshes(d, dx, spec), (x,)),
           "pm_forces_vjp": (lambda dx, f, ct: pm_forces_vjp(d, dx, f, ct, spec), (x, m, x)),
           "pm_forces_and_vjp": (lambda dx, ct: pm_forces_and_vjp(d, dx, ct, spec), (x, x)),
           "jax.vjp(pm_forces)": (lambda dx, ct: jax.vjp(lambda y: pm_forces(d, y, spec), dx)[1](ct)[0], (x, x))}
    return {k: _parts(jax.jit(f).lower(*a).compile()) for k, (f, a) in fns.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="64")
    ap.add_argument("--steps", default="10,40")
    ap.add_argument("--mode", default="adjoint", help="autodiff of the gradient: adjoint, checkpoint or store")
    ap.add_argument("--reps", type=int, default=0, help="timed runs (median); 0: memory only")
    ap.add_argument("--pieces", action="store_true", help="also the single force pieces")
    a = ap.parse_args(argv)
    print(f"{jax.devices()[0].platform}, jax {jax.__version__}, float32, gradient autodiff = {a.mode}; MiB")
    print(f"{'N':>4} {'steps':>5} | {'fwd arg':>8} {'out':>7} {'temp':>8} {'total':>8} | {'grad arg':>8} {'out':>7} "
          f"{'temp':>8} {'total':>8} | {'mem x':>5} | {'fwd ms':>8} {'grad ms':>9} {'time x':>6}", flush=True)
    for N in (int(x) for x in a.sizes.split(",")):
        for steps in (int(x) for x in a.steps.split(",")):
            r = run(N, steps, a.mode, a.reps)
            f, g = r["forward"], r["grad"]
            t = (f"{1e3 * f['time_s']:8.1f} {1e3 * g['time_s']:9.1f} {g['time_s'] / f['time_s']:6.2f}"
                 if a.reps else f"{'-':>8} {'-':>9} {'-':>6}")
            print(f"{N:4d} {steps:5d} | {f['arg'] * MiB:8.1f} {f['out'] * MiB:7.1f} {f['temp'] * MiB:8.1f} {f['total'] * MiB:8.1f} | "
                  f"{g['arg'] * MiB:8.1f} {g['out'] * MiB:7.1f} {g['temp'] * MiB:8.1f} {g['total'] * MiB:8.1f} | "
                  f"{g['total'] / f['total']:5.2f} | {t}", flush=True)
        if a.pieces:
            for k, p in pieces(N).items():
                print(f"{N:4d} piece {k:>22}: arg {p['arg'] * MiB:7.1f} out {p['out'] * MiB:7.1f} temp {p['temp'] * MiB:8.1f} "
                      f"total {p['total'] * MiB:8.1f} MiB", flush=True)


if __name__ == "__main__":
    main()
