#!/usr/bin/env python
"""Time the jaxpm engine on one device: initial conditions, 2LPT, one PM force, a 10-step FastPM run
and its gradient, with compile time and memory for each.

Usage:
    python benchmarks/bench_engine.py --sizes 32,64 [--box-per-cell 1.0] [--B 1] [--reps 5]
                                      [--reps-heavy 3] [--out benchmarks/results] [--time-budget 480]

For each size N (particles per side; box = N * box_per_cell Mpc/h) every measurement is

    lowered = jax.jit(f).lower(*args); compiled = lowered.compile()   -> compile_s, memory analysis
    compiled(*args) once (warm-up, first_call_s, not in the statistics)
    compiled(*args) `reps` times, each ended by jax.block_until_ready   -> median_s, min_s, max_s

Measurements, in the order they run for each size:
    linear_field   white noise -> linear density field (Eisenstein-Hu power, sigma8 normalisation)
    growth_table   the D1/D2 growth ODE solve that lpt and simulate do internally
    lpt2           2LPT displacement and momentum at a = 0.1 from a given linear field
    force          one pm_forces call (paint, rfft, 3 irfft, read) at the 2LPT positions
    sim10          simulate(): 2LPT at a = 0.1 + 10 FastPM steps to a = 1 (11 force evaluations)
    grad_sim10     jax.grad of mean(dx_final**2) with respect to the linear field

Memory, two figures:
    memory_analysis   XLA's compiled figures for that one function (argument + output + temp - alias);
                      per function, available on CPU too.
    device_stats      jax.devices()[0].memory_stats() right after the measurement (GPU/TPU only).
                      peak_bytes_in_use is cumulative over the whole process (no reset in JAX), so the
                      peak after `sim10` is the peak of everything run so far (earlier, smaller sizes and
                      the lighter measurements of this size included), and the peak after `grad_sim10`
                      is "peak after grad": max(forward, gradient). Sizes run from small to large.

Errors (out-of-memory included) are caught per measurement and recorded as results. The JSON file is
rewritten (atomically) after every measurement, so a run that is killed keeps what it finished.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import hashlib
import json
import os
import pathlib
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import traceback

REPO = pathlib.Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # our engine, not another package that is also called `jaxpm`
    sys.path.insert(0, str(REPO))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import jaxpm  # noqa: E402

if not hasattr(jaxpm, "Domain"):
    raise SystemExit(f"`jaxpm` resolved to {jaxpm.__file__}, which is not this engine: put {REPO} first on PYTHONPATH")

from jaxpm import Cosmology, Domain, ForceSpec, growth_table, linear_field, lpt, pm_forces, simulate, white_noise  # noqa: E402

GiB = 2**30
A_INIT, N_STEPS = 0.1, 10


# --------------------------------------------------------------------------------------------------
# environment
# --------------------------------------------------------------------------------------------------

def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10)
        if out.returncode == 0 and re.fullmatch(r"[0-9a-f]{40}", out.stdout.strip()):
            return out.stdout.strip()
    except Exception:
        pass
    return "unknown"


def _git_dirty():
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--", "jaxpm"], cwd=REPO, capture_output=True, text=True, timeout=10)
        return bool(out.stdout.strip()) if out.returncode == 0 else None
    except Exception:
        return None


def _source_sha256() -> str:
    """Hash of the engine's source files (identifies the code also where .git did not travel)."""
    h = hashlib.sha256()
    root = pathlib.Path(jaxpm.__file__).resolve().parent
    for f in sorted(root.rglob("*.py")):
        h.update(str(f.relative_to(root)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def _version(mod_name: str) -> str:
    try:
        mod = __import__(mod_name)
        return str(getattr(mod, "__version__", "unknown"))
    except Exception:
        return "not installed"


def environment() -> dict:
    devs = jax.devices()
    d0 = devs[0]
    return {
        "device": {
            "kind": d0.device_kind,
            "platform": d0.platform,
            "count": len(devs),
            "host": platform.node(),
            "cpu_count": os.cpu_count(),
        },
        "versions": {
            "python": platform.python_version(),
            "jax": jax.__version__,
            "jaxlib": _version("jaxlib"),
            "numpy": np.__version__,
            "diffrax": _version("diffrax"),
            "equinox": _version("equinox"),
            "jax_cosmo": _version("jax_cosmo"),
            "jaxpm": getattr(jaxpm, "__version__", "unknown"),
            "jaxpm_git_commit": _git_commit(),
            "jaxpm_git_dirty": _git_dirty(),
            "jaxpm_source_sha256": _source_sha256(),
            "jaxpm_path": str(pathlib.Path(jaxpm.__file__).resolve().parent),
        },
    }


def _slug(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-") or "device"


def write_json_atomic(path: pathlib.Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# --------------------------------------------------------------------------------------------------
# measuring
# --------------------------------------------------------------------------------------------------

def device_stats() -> dict | None:
    try:
        s = jax.devices()[0].memory_stats()
    except Exception:
        return None
    if not s:
        return None
    keys = ("bytes_in_use", "peak_bytes_in_use", "bytes_limit", "largest_alloc_size")
    return {k: int(s[k]) for k in keys if k in s}


def memory_analysis(compiled) -> dict | None:
    try:
        m = compiled.memory_analysis()
    except Exception as e:  # not every backend provides it
        return {"error": repr(e)[:200]}
    if m is None:
        return None
    out = {}
    for k in ("argument_size_in_bytes", "output_size_in_bytes", "alias_size_in_bytes", "temp_size_in_bytes",
              "generated_code_size_in_bytes"):
        v = getattr(m, k, None)
        if v is not None:
            out[k] = int(v)
    if {"argument_size_in_bytes", "output_size_in_bytes", "temp_size_in_bytes"} <= out.keys():
        out["total_bytes"] = (out["argument_size_in_bytes"] + out["output_size_in_bytes"]
                              + out["temp_size_in_bytes"] - out.get("alias_size_in_bytes", 0))
    return out


def _classify(exc: BaseException) -> str:
    msg = f"{type(exc).__name__}: {exc}"
    if re.search(r"RESOURCE_EXHAUSTED|out of memory|OOM|Out of memory|Failed to allocate", msg):
        return "oom"
    return "error"


def measure(fn, args, reps: int):
    """Compile, warm up and time ``fn(*args)``. Returns (record, last output or None)."""
    rec: dict = {"reps": reps}
    out = None
    stage = "lower"
    try:
        t0 = time.perf_counter()
        lowered = jax.jit(fn).lower(*args)
        stage = "compile"
        compiled = lowered.compile()
        rec["compile_s"] = time.perf_counter() - t0
        rec["memory_analysis"] = memory_analysis(compiled)
        stage = "first call"
        t0 = time.perf_counter()
        out = jax.block_until_ready(compiled(*args))
        rec["first_call_s"] = time.perf_counter() - t0
        stage = "timed calls"
        times = []
        for _ in range(reps):
            del out
            out = None
            t0 = time.perf_counter()
            out = jax.block_until_ready(compiled(*args))
            times.append(time.perf_counter() - t0)
        rec.update(status="ok", median_s=statistics.median(times), min_s=min(times), max_s=max(times), times_s=times)
    except Exception as e:  # OOM and any other failure is a result
        out = None
        rec.update(status=_classify(e), stage=stage, error=f"{type(e).__name__}: {str(e)[:1500]}",
                   traceback=traceback.format_exc()[-1500:])
    gc.collect()
    rec["device_stats_after"] = device_stats()
    return rec, out


def bench_size(n: int, args, results: list, save) -> dict:
    box = n * args.box_per_cell
    d = Domain.create(n, box, B=args.B, dtype=args.dtype)
    c = Cosmology()
    spec = ForceSpec()
    res: dict = {"N": n, "box": box, "B": args.B, "mesh": list(d.mesh_shape), "n_particles": d.n_particles,
                 "device_stats_before": device_stats(), "measurements": {}}
    results.append(res)  # saved as it fills, so a killed run keeps what it finished
    meas = res["measurements"]
    t_size = time.perf_counter()

    def run(name, fn, fargs, reps):
        if args.time_budget and time.perf_counter() - T_START > args.time_budget:
            meas[name] = {"status": "skipped", "error": f"time budget of {args.time_budget} s spent"}
            print(f"  N={n:5d} {name:13s} skipped (time budget)", flush=True)
            save()
            return None
        rec, out = measure(fn, fargs, reps)
        meas[name] = rec
        if rec["status"] == "ok":
            ma = (rec.get("memory_analysis") or {}).get("total_bytes")
            ds = (rec.get("device_stats_after") or {}).get("peak_bytes_in_use")
            print(f"  N={n:5d} {name:13s} median {rec['median_s']:10.4f} s   compile {rec['compile_s']:7.2f} s"
                  + (f"   compiled mem {ma / GiB:7.2f} GiB" if ma is not None else "")
                  + (f"   peak so far {ds / GiB:7.2f} GiB" if ds is not None else ""), flush=True)
        else:
            print(f"  N={n:5d} {name:13s} {rec['status'].upper()} at {rec['stage']}: {rec['error'][:300]}", flush=True)
        save()
        return out

    noise = white_noise(d, 0)
    lin = run("linear_field", lambda cc, w: linear_field(d, cc, w), (c, noise), args.reps)
    del noise
    if lin is None:  # fall back to a plain white-noise field so that the engine can still be timed
        lin = 0.05 * white_noise(d, 0)
        res["note"] = "linear_field failed; later measurements use 0.05 * white noise as the linear field"

    run("growth_table", lambda cc: growth_table(cc, d.real_dtype), (c,), args.reps)

    dxp = run("lpt2", lambda cc, l: lpt(d, cc, l, A_INIT, order=2), (c, lin), args.reps)
    if dxp is not None:
        dx0 = dxp[0]
        del dxp
        run("force", lambda x: pm_forces(d, x, spec), (dx0,), args.reps)
        del dx0

    def sim(cc, l):
        s = simulate(d, cc, l, a_init=A_INIT, a_out=[1.0], steps=N_STEPS, stepper="fastpm", lpt_order=2, force=spec)[-1]
        return s.dx, s.p

    fwd = run("sim10", sim, (c, lin), args.reps_heavy)
    del fwd
    res["peak_bytes_after_forward"] = (device_stats() or {}).get("peak_bytes_in_use")

    def loss(l, cc):
        s = simulate(d, cc, l, a_init=A_INIT, a_out=[1.0], steps=N_STEPS, stepper="fastpm", lpt_order=2, force=spec)[-1]
        return jnp.mean(s.dx ** 2)

    g = run("grad_sim10", jax.grad(loss), (lin, c), args.reps_heavy)
    if g is not None:
        res["grad_finite"] = bool(jnp.all(jnp.isfinite(g)))
        res["grad_rms"] = float(jnp.sqrt(jnp.mean(g.astype(jnp.float32) ** 2)))
    del g
    res["peak_bytes_after_grad"] = (device_stats() or {}).get("peak_bytes_in_use")
    res["wall_s"] = time.perf_counter() - t_size
    del lin
    gc.collect()
    return res


# --------------------------------------------------------------------------------------------------
# table
# --------------------------------------------------------------------------------------------------

COLUMNS = ("linear_field", "growth_table", "lpt2", "force", "sim10", "grad_sim10")


def _cell(rec) -> str:
    if rec is None:
        return "-"
    if rec.get("status") == "ok":
        return f"{rec['median_s']:.4g}"
    return rec.get("status", "?").upper()


def table(results: list[dict]) -> str:
    head = ["N"] + [f"{c} [s]" for c in COLUMNS] + ["compile sim/grad [s]", "mem sim/grad [GiB]", "peak fwd/grad [GiB]"]
    rows = [head]
    for r in results:
        m = r["measurements"]
        comp = "/".join(f"{m[k]['compile_s']:.1f}" if k in m and "compile_s" in m[k] else "-" for k in ("sim10", "grad_sim10"))
        mem = "/".join(
            f"{m[k]['memory_analysis']['total_bytes'] / GiB:.2f}"
            if k in m and (m[k].get("memory_analysis") or {}).get("total_bytes") is not None else "-"
            for k in ("sim10", "grad_sim10"))
        pk = "/".join(f"{r[k] / GiB:.2f}" if r.get(k) is not None else "-"
                      for k in ("peak_bytes_after_forward", "peak_bytes_after_grad"))
        fallback = {"status": r["status"]} if r.get("status") in ("oom", "error") else None
        rows.append([str(r["N"])] + [_cell(m.get(c, fallback)) for c in COLUMNS] + [comp, mem, pk])
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    return "\n".join("  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in rows)


# --------------------------------------------------------------------------------------------------

T_START = time.perf_counter()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="32,64", help="comma-separated particles per side, run in this order")
    ap.add_argument("--box-per-cell", type=float, default=1.0, help="box side per particle [Mpc/h] (box = N * this)")
    ap.add_argument("--B", type=int, default=1, help="force-mesh factor (mesh = B * N per side)")
    ap.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    ap.add_argument("--reps", type=int, default=5, help="timed repetitions of the light measurements")
    ap.add_argument("--reps-heavy", type=int, default=None, help="repetitions of sim10 and grad_sim10 (default: --reps)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results"), help="folder of the JSON result file")
    ap.add_argument("--time-budget", type=float, default=0.0,
                    help="seconds after which remaining measurements are skipped (0: no limit)")
    args = ap.parse_args(argv)
    args.reps_heavy = args.reps if args.reps_heavy is None else args.reps_heavy
    if args.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]

    env = environment()
    now = _dt.datetime.now(_dt.timezone.utc)
    path = pathlib.Path(args.out) / f"engine_{_slug(env['device']['kind'])}_{now.strftime('%Y-%m-%dT%H%M')}.json"
    doc = {
        "benchmark": "jaxpm engine (benchmarks/bench_engine.py)",
        "date": now.isoformat(timespec="seconds"),
        **env,
        "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
        "config": {
            "sizes": sizes, "B": args.B, "box_per_cell_Mpc_h": args.box_per_cell,
            "box_Mpc_h": {str(n): n * args.box_per_cell for n in sizes}, "dtype": args.dtype,
            "reps": args.reps, "reps_heavy": args.reps_heavy, "a_init": A_INIT, "a_final": 1.0,
            "steps": N_STEPS, "stepper": "fastpm", "lpt_order": 2, "force": repr(ForceSpec()),
            "cosmology": Cosmology().as_dict(), "seed": 0,
            "loss_for_grad": "mean(dx_final**2), gradient with respect to the linear field",
        },
        "notes": [
            "Times are medians over the timed calls, after one warm-up call; compile_s is lower + compile.",
            "memory_analysis.total_bytes = argument + output + temp - alias of the compiled function alone.",
            "device_stats peak_bytes_in_use is cumulative over the process (JAX cannot reset it): "
            "peak_bytes_after_forward is the peak after all measurements up to sim10 of this size (and of "
            "smaller sizes run before), peak_bytes_after_grad is the 'peak after grad' = max(forward, grad).",
            "sim10 counts 2LPT + growth table + 11 force evaluations (one at a_init, one per step).",
        ],
        "results": [],
    }
    save = lambda: write_json_atomic(path, doc)  # noqa: E731
    print(f"device {env['device']['kind']} ({env['device']['platform']} x{env['device']['count']}), "
          f"jax {jax.__version__}, engine at {env['versions']['jaxpm_path']}", flush=True)
    print(f"writing {path}", flush=True)
    for n in sizes:
        k = len(doc["results"])
        try:
            bench_size(n, args, doc["results"], save)
        except Exception as e:  # set-up failure of a whole size
            r = doc["results"][k] if len(doc["results"]) > k else {"N": n, "measurements": {}}
            r.update(status=_classify(e), error=f"{type(e).__name__}: {str(e)[:1500]}",
                     traceback=traceback.format_exc()[-1500:])
            doc["results"][k:] = [r]
            print(f"  N={n:5d} FAILED: {r['error'][:300]}", flush=True)
        save()
    doc["total_wall_s"] = time.perf_counter() - T_START
    save()
    print()
    print(table(doc["results"]))
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
