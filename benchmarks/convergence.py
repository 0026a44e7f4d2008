#!/usr/bin/env python
"""Accuracy per step: BullFrog, FastPM and leapfrog against converged references of our own.

For one set of initial conditions (2LPT at ``--a-init``), every stepper is run to z = 0 with each
number of steps in ``--steps`` on a force mesh of ``--B`` x N cells per side, and compared with two
references, both FastPM with ``--ref-steps`` steps from the same ICs:

    ref         on a ``--ref-B`` x N force mesh (the converged answer asked for)
    same_mesh   on the ``--B`` x N mesh of the runs under test (what time stepping alone converges to;
                its distance to ``ref`` is the floor that the force mesh B sets)

All final particle sets are painted with CIC on the same N^3 measurement mesh; per k bin (width 2 pi/L):

    P(k) / P_ref(k) - 1        (CIC window divided out, no shot-noise subtraction: the same for all)
    1 - r(k),   r = P_x,ref / sqrt(P P_ref)

and the summary numbers (for each reference):

    k_1pct[series][steps]   the largest k up to which every bin stays within --tolerance (1 %) of P_ref
    steps_for_1pct_at_half_nyquist[series]   the fewest steps (of those run) with |P/P_ref - 1| <= 1 %
                            in every bin up to k_Nyq / 2 (k_Nyq = pi N / L of the particle grid)
    seconds_per_step[series]   slope of a straight-line fit of the run time (fastest of --reps compiled
                            runs, growth table and 2LPT included; the fastest is the least disturbed
                            by other load) against the number of steps

Step spacing: BullFrog uniform in D1 (its time variable; the paper's choice), FastPM and leapfrog
uniform in a (this code's default), unless ``--spacing`` sets one for all. ``--from-rest`` adds BullFrog
started at a = 0 (series "bullfrog-a0"); the references start at --a-init, so that series also measures
how the start time changes a PM run (about +1 % in P(k) at k < 0.1 h/Mpc at 64^3 / 128 Mpc/h).

Usage (CPU, the committed run, ~2 min on 2 cores):
    python benchmarks/convergence.py --particles 64 --box 128 --ref-steps 100 --ref-B 2
GPU (one H100/H200, see benchmarks/README.md):
    python benchmarks/convergence.py --particles 512 --box 1000 --ref-steps 200 --ref-B 2 --out $OUT

Writes ``convergence_<device>_<date>.json`` and ``.png`` to ``--out`` (default benchmarks/results).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import pathlib
import statistics
import sys
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # our engine, not another package that is also called `jaxpm`
    sys.path.insert(0, str(REPO))

import jax  # noqa: E402
import numpy as np  # noqa: E402

import jaxpm  # noqa: E402

if not str(pathlib.Path(jaxpm.__file__).resolve()).startswith(str(REPO)):
    sys.exit(f"jaxpm resolves to {jaxpm.__file__}, not this repository ({REPO}); fix PYTHONPATH")

from jaxpm import Cosmology, Domain, ForceSpec, density, linear_field_from_seed, simulate  # noqa: E402
from jaxpm.io import atomic_write, device_info, save_json, versions  # noqa: E402
from jaxpm.observables import cross_correlation, default_k_edges, power_spectrum  # noqa: E402

NATURAL_SPACING = {"bullfrog": "growth", "fastpm": "a", "leapfrog": "a"}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--particles", type=int, default=64, help="particles per side N (default 64)")
    p.add_argument("--box", type=float, default=128.0, help="box side [Mpc/h] (default 128)")
    p.add_argument("--B", type=int, default=1, help="force mesh factor of the runs under test (default 1)")
    p.add_argument("--steps", default="3,5,6,10,20", help="comma-separated step counts (default 3,5,6,10,20)")
    p.add_argument("--steppers", default="bullfrog,fastpm,leapfrog", help="comma-separated (default bullfrog,fastpm,leapfrog)")
    p.add_argument("--spacing", default="natural", help="natural (bullfrog: growth, others: a), a, loga or growth")
    p.add_argument("--ref-steps", type=int, default=100, help="FastPM steps of the reference (default 100)")
    p.add_argument("--ref-B", type=int, default=2, help="force mesh factor of the reference (default 2)")
    p.add_argument("--a-init", type=float, default=0.1, help="2LPT initial conditions at this a (default 0.1)")
    p.add_argument("--from-rest", action="store_true",
                   help="add BullFrog started at a = 0 from the 1LPT velocity (series 'bullfrog-a0'); note the "
                        "references start from 2LPT at --a-init, so this also measures the start time")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--paint", default="cic", help="mass assignment of the force (default cic)")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--reps", type=int, default=3, help="timed runs per setting after a warm-up (default 3)")
    p.add_argument("--tolerance", type=float, default=0.01, help="the P(k) accuracy asked for (default 0.01)")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    p.add_argument("--tag", default=None, help="file name tag (default: device kind and UTC date)")
    return p.parse_args(argv)


def k_within(k, ratio, tol):
    """Largest k such that every bin up to it has |ratio - 1| <= tol (0 if the first bin fails)."""
    bad = np.abs(np.asarray(ratio) - 1.0) > tol
    if not bad.any():
        return float(k[-1])
    first = int(np.argmax(bad))
    return float(k[first - 1]) if first > 0 else 0.0


def timed(fn, arg, reps):
    t = time.perf_counter()
    compiled = jax.jit(fn).lower(arg).compile()
    compile_s = time.perf_counter() - t
    out = jax.block_until_ready(compiled(arg))  # warm-up
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        out = jax.block_until_ready(compiled(arg))
        times.append(time.perf_counter() - t)
    return out, compile_s, times


def compare(delta, delta_ref, p_ref, edges, box, tol):
    """P(k) / P_ref(k) and 1 - r(k) of ``delta`` against a reference field, and k_1pct."""
    p = power_spectrum(delta, box, k_edges=edges, compensate="cic")
    _, r = cross_correlation(delta, delta_ref, box, k_edges=edges)
    ratio = np.asarray(p.power) / np.asarray(p_ref.power)
    return {"ratio": ratio, "one_minus_r": 1.0 - np.asarray(r), "k_1pct": k_within(np.asarray(p.k), ratio, tol)}


def main(argv=None):
    t_start = time.perf_counter()
    args = parse_args(argv)
    if args.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    steps_list = [int(s) for s in args.steps.split(",")]
    steppers = [s.strip() for s in args.steppers.split(",")]
    cosmo = Cosmology()
    dom = Domain.create(args.particles, args.box, args.B, args.dtype)
    dom_meas = Domain.create(args.particles, args.box, 1, args.dtype)
    spec = ForceSpec(paint=args.paint)
    edges = default_k_edges(dom_meas.mesh_shape, dom_meas.box)
    box = dom_meas.box
    k_half = dom_meas.k_nyquist / 2
    tol = args.tolerance
    started = _dt.datetime.now(_dt.timezone.utc)
    dev = device_info()
    tag = args.tag or f"{dev['kind'].lower().replace(' ', '-')}_{started:%Y-%m-%d}"
    out_dir = pathlib.Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    say = lambda *m: print(*m, flush=True)
    say(f"convergence: {args.particles}^3 in {args.box} Mpc/h, B = {args.B}; reference FastPM {args.ref_steps} steps, "
        f"B = {args.ref_B}; on {dev['kind']} x{dev['count']}")

    lin = jax.block_until_ready(jax.jit(lambda: linear_field_from_seed(dom, cosmo, args.seed))())
    measure = jax.jit(lambda dx: density(dom_meas, dx, "cic") - 1.0)

    def run(B, stepper, steps, spacing, a_init, reps):
        domain = Domain.create(args.particles, args.box, B, args.dtype)
        fn = lambda l: simulate(domain, cosmo, l, a_init=a_init, a_out=[1.0], steps=steps, stepper=stepper,
                                spacing=spacing, force=spec)[0].dx
        dx, compile_s, times = timed(fn, lin, reps)
        return measure(dx), compile_s, times

    # the references: FastPM with ref_steps on the finer mesh ("ref"), and on the mesh under test
    # ("same_mesh": what time stepping alone converges to; its distance to "ref" is the floor of B)
    refs = {}
    for name, B in (("ref", args.ref_B), ("same_mesh", args.B)):
        if name == "same_mesh" and B == args.ref_B:
            refs[name] = refs["ref"]
            continue
        t = time.perf_counter()
        delta, compile_s, times = run(B, "fastpm", args.ref_steps, "a", args.a_init, 1)
        refs[name] = {"delta": delta, "p": power_spectrum(delta, box, k_edges=edges, compensate="cic"),
                      "B": B, "compile_s": compile_s, "run_s": times[0]}
        say(f"reference {name} (FastPM {args.ref_steps} steps, B = {B}) in {time.perf_counter() - t:.1f} s "
            f"(compile {compile_s:.1f} s, run {times[0]:.2f} s)")
    k = np.asarray(refs["ref"]["p"].k)
    j_half = int(np.argmin(np.abs(k - k_half)))
    floor = compare(refs["same_mesh"]["delta"], refs["ref"]["delta"], refs["ref"]["p"], edges, box, tol)

    series = [(s, s, args.a_init) for s in steppers]
    if args.from_rest and "bullfrog" in steppers:
        series.append(("bullfrog-a0", "bullfrog", 0.0))
    runs = []
    for name, stepper, a_init in series:
        spacing = NATURAL_SPACING[stepper] if args.spacing == "natural" else args.spacing
        for n in steps_list:
            delta, compile_s, times = run(args.B, stepper, n, spacing, a_init, args.reps)
            entry = {"series": name, "stepper": stepper, "a_init": a_init, "steps": n, "spacing": spacing,
                     "compile_s": compile_s, "run_s": statistics.median(times), "run_min_s": min(times),
                     "run_times_s": times}
            for rname, ref in refs.items():
                entry["vs_" + rname] = compare(delta, ref["delta"], ref["p"], edges, box, tol)
            runs.append(entry)
            a, b = entry["vs_ref"], entry["vs_same_mesh"]
            say(f"{name:>11s} {n:3d} steps ({spacing}): run {entry['run_s']:.3f} s | vs ref: P/P_ref - 1 at k_Nyq/2 "
                f"{a['ratio'][j_half] - 1:+.4f}, 1 - r {a['one_minus_r'][j_half]:.2e}, within {tol:.0%} to k = {a['k_1pct']:.3f} "
                f"| vs same mesh: {b['ratio'][j_half] - 1:+.4f}, within {tol:.0%} to k = {b['k_1pct']:.3f}")
        del delta

    # summary numbers
    sel = k <= k_half * (1 + 1e-9)
    summary = {"k_nyquist": dom_meas.k_nyquist, "k_half_nyquist": k_half, "tolerance": tol,
               "floor": {"max_abs_dev_to_half_nyquist": float(np.max(np.abs(floor["ratio"][sel] - 1))),
                         "k_1pct": floor["k_1pct"]},
               "seconds_per_step": {}, "fixed_seconds": {}}
    for rname in refs:
        block = {"k_1pct": {}, "steps_for_1pct_at_half_nyquist": {}, "max_abs_dev_to_half_nyquist": {}}
        for name in dict.fromkeys(r["series"] for r in runs):
            rs = [r for r in runs if r["series"] == name]
            block["k_1pct"][name] = {str(r["steps"]): r["vs_" + rname]["k_1pct"] for r in rs}
            devs = {r["steps"]: float(np.max(np.abs(r["vs_" + rname]["ratio"][sel] - 1))) for r in rs}
            block["max_abs_dev_to_half_nyquist"][name] = {str(n): v for n, v in devs.items()}
            ok = [n for n, v in devs.items() if v <= tol]
            block["steps_for_1pct_at_half_nyquist"][name] = min(ok) if ok else None
        summary["vs_" + rname] = block
    for name in dict.fromkeys(r["series"] for r in runs):
        rs = [r for r in runs if r["series"] == name]
        if len(rs) >= 2:
            slope, icpt = np.polyfit([r["steps"] for r in rs], [r["run_min_s"] for r in rs], 1)
            summary["seconds_per_step"][name], summary["fixed_seconds"][name] = float(slope), float(icpt)
    if "bullfrog" in steppers and 6 in steps_list:
        summary["bullfrog_6_steps_k_1pct"] = {r: summary["vs_" + r]["k_1pct"]["bullfrog"]["6"] for r in refs}

    stats = jax.devices()[0].memory_stats() or {}  # GPU only; the process-wide peak (the B = ref_B reference)
    result = {
        "what": "P(k) ratio and 1 - r(k) at z = 0 against converged FastPM references (benchmarks/convergence.py)",
        "date_utc": started.isoformat(timespec="seconds"),
        "wall_s": time.perf_counter() - t_start,
        "peak_device_bytes": stats.get("peak_bytes_in_use"),
        "device": dev, "versions": versions(),
        "sizes": {"particles": args.particles, "box": args.box, "B": args.B, "ref_steps": args.ref_steps,
                  "ref_B": args.ref_B, "measurement_mesh": args.particles, "dtype": args.dtype},
        "settings": {"a_init": args.a_init, "lpt_order": 2, "seed": args.seed, "force": spec.__dict__,
                     "cosmology": cosmo.as_dict(), "steps": steps_list, "spacing": args.spacing,
                     "natural_spacing": NATURAL_SPACING, "reps": args.reps,
                     "measurement": "CIC on the N^3 particle-grid mesh, window divided out, no shot-noise subtraction"},
        "references": {name: {"stepper": "fastpm", "steps": args.ref_steps, "B": ref["B"], "spacing": "a",
                              "compile_s": ref["compile_s"], "run_s": ref["run_s"], "pk": np.asarray(ref["p"].power)}
                       for name, ref in refs.items()},
        "floor_vs_ref": floor,
        "k": k, "n_modes": np.asarray(refs["ref"]["p"].n_modes),
        "runs": runs, "summary": summary,
    }
    json_path = out_dir / f"convergence_{tag}.json"
    save_json(json_path, result)
    png_path = out_dir / f"convergence_{tag}.png"
    figure(png_path, result)

    say("\nsummary (k_Nyq/2 = {:.3f} h/Mpc)".format(k_half))
    say(f"  floor: FastPM {args.ref_steps} steps at B = {args.B} vs B = {args.ref_B}: max |P/P_ref - 1| up to k_Nyq/2 = "
        f"{summary['floor']['max_abs_dev_to_half_nyquist']:.4f}, within {tol:.0%} to k = {floor['k_1pct']:.3f}")
    if "bullfrog_6_steps_k_1pct" in summary:
        b6 = summary["bullfrog_6_steps_k_1pct"]
        say(f"  6 BullFrog steps within {tol:.0%} of P_ref up to k = {b6['ref']:.3f} h/Mpc (B = {args.ref_B} reference), "
            f"{b6['same_mesh']:.3f} h/Mpc (same-mesh reference)")
    for name in summary["vs_ref"]["steps_for_1pct_at_half_nyquist"]:
        need = [summary["vs_" + r]["steps_for_1pct_at_half_nyquist"][name] for r in ("ref", "same_mesh")]
        need = [str(n) if n is not None else f"> {max(steps_list)}" for n in need]
        sps = summary["seconds_per_step"].get(name, float("nan"))
        say(f"  {name:>11s}: steps for {tol:.0%} up to k_Nyq/2: {need[0]} (B = {args.ref_B} ref), {need[1]} (same mesh); "
            f"time per step {sps * 1e3:.2f} ms")
    peak = f", peak device memory {result['peak_device_bytes'] / 2**30:.1f} GiB" if result["peak_device_bytes"] else ""
    say(f"wrote {json_path} and {png_path} ({result['wall_s']:.0f} s{peak})")
    return result


def figure(path, result):
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = np.asarray(result["k"])
    series = list(dict.fromkeys(r["series"] for r in result["runs"]))
    steps = sorted({r["steps"] for r in result["runs"]})
    colours = plt.cm.viridis(np.linspace(0.0, 0.85, len(steps)))
    sz = result["sizes"]
    fig, axes = plt.subplots(3, len(series), figsize=(3.8 * len(series), 8.6), sharex=True, sharey="row", squeeze=False)
    kh = result["summary"]["k_half_nyquist"]
    tol = result["summary"]["tolerance"]
    floor = result["floor_vs_ref"]
    rows = [("vs_ref", "ratio", f"P / P_ref - 1  (ref: B = {sz['ref_B']})"),
            ("vs_ref", "one_minus_r", f"1 - r  (ref: B = {sz['ref_B']})"),
            ("vs_same_mesh", "ratio", f"P / P_ref - 1  (ref: B = {sz['B']})")]
    for col, name in enumerate(series):
        rs = [r for r in result["runs"] if r["series"] == name]
        for row, (ref, key, label) in enumerate(rows):
            ax = axes[row, col]
            for r in rs:
                y = np.asarray(r[ref][key])
                y = y - 1 if key == "ratio" else np.clip(y, 1e-7, None)
                ax.plot(k, y, color=colours[steps.index(r["steps"])], label=f"{r['steps']} steps")
            if ref == "vs_ref" and sz["B"] != sz["ref_B"]:
                y = np.asarray(floor[key])
                y = y - 1 if key == "ratio" else np.clip(y, 1e-7, None)
                ax.plot(k, y, color="k", ls="--", lw=1, label=f"FastPM {sz['ref_steps']} steps, B = {sz['B']}")
            if key == "ratio":
                ax.axhspan(-tol, tol, color="0.9", zorder=0)
                ax.set_ylim(-0.3, 0.1)
            else:
                ax.set_yscale("log")
                ax.set_ylim(1e-6, 1)
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.axvline(kh, color="0.5", ls=":", lw=1)
            if col == 0:
                ax.set_ylabel(label, fontsize=9)
        start = "from a = 0" if rs[0]["a_init"] == 0 else f"2LPT at a = {rs[0]['a_init']:g}"
        axes[0, col].set_title(f"{rs[0]['stepper']}, {rs[0]['spacing']} spacing, {start}", fontsize=9)
        axes[-1, col].set_xlabel("k [h/Mpc]")
    axes[0, 0].legend(fontsize=7, loc="lower left")
    fig.suptitle(f"{sz['particles']}^3 particles, {sz['box']:g} Mpc/h, B = {sz['B']}, z = 0; references: FastPM "
                 f"{sz['ref_steps']} steps ({result['device']['kind']}); dotted: k_Nyq/2", fontsize=10)
    fig.tight_layout()

    import io as _io

    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write(path, lambda fh: fh.write(buf.getvalue()), suffix=".png")


if __name__ == "__main__":
    main()
