#!/usr/bin/env python
"""Strong scaling of the distributed engine over the GPUs of one host, and its agreement with one GPU.

Usage:
    python benchmarks/bench_distributed.py --sizes 256,512 [--reps 10] [--out benchmarks/results]

For each size N (particles per side, B = 1, box = N Mpc/h, float32) and each layout -- one device
(1, 1), then every device count P > 1 present as pdims (1, P) and (P, 1) -- it measures (compile
excluded, median of ``reps`` calls; ``bench_engine.measure``):

    step     one FastPM step (kick, drift, one PM force: paint, r2c FFT, 3 inverse FFTs, read) at a ~ 0.5
    force    one pm_forces call at the 2LPT positions
    sim10    2LPT at a = 0.1 + 10 FastPM steps + the density mesh (the engine's standard job)

and compares the sim10 density with the one-device result (max |diff| / max |rho|, and the largest
relative difference of P(k) over the bins).

Communication share of a step on P devices: the same step is timed on one device for the *local*
problem (N x N/P x N particles in a N x N/P x N Mpc/h box: one device's share of the particles and
mesh, periodic); the share is 1 - T_local / T_P, i.e. the fraction of the step not explained by
each device's own work (all-to-all transposes, halo permutes, migration, and any imbalance).

FFT: the r2c pencil transform (forward + inverse) of jaxpm.pfft against jaxdecomp's c2c pfft3d /
pifft3d of the same real field (time and XLA's compiled memory), when jaxdecomp is installed.

The JSON is rewritten atomically after every measurement; a killed run keeps what it finished.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import jaxpm  # noqa: E402
from bench_engine import environment, measure, write_json_atomic  # noqa: E402
from jaxpm import fourier  # noqa: E402
from jaxpm.forces import pm_forces  # noqa: E402
from jaxpm.halo import check_migration  # noqa: E402
from jaxpm.observables import domain_modes, power_spectrum  # noqa: E402
from jaxpm.simulation import make_time_grid  # noqa: E402
from jaxpm.steppers import fastpm  # noqa: E402


def layouts(n_dev: int):
    out = [("1 device", (1, 1), 1)]
    for p in sorted({2, 4, 8, n_dev}):
        if 1 < p <= n_dev:
            out += [(f"{p} devices (1,{p})", (1, p), p), (f"{p} devices ({p},1)", (p, 1), p)]
    return out


def bench_layout(n, pd, ndev, reps, particles=None, box=None):
    devs = jax.devices()[:ndev]
    particles = particles or (n, n, n)
    box = box or tuple(float(v) for v in particles)
    d = jaxpm.Domain.create(particles, box, pdims=pd, devices=devs)
    c = jaxpm.Cosmology()
    lin = jax.jit(lambda c: jaxpm.linear_field(d, c, jaxpm.white_noise(d, 0)))(c)
    grid, _ = make_time_grid(c, 0.1, [1.0], 10, "a")
    st = fastpm(d, c)
    dx, p = jax.jit(lambda c, l: jaxpm.lpt(d, c, l, 0.1))(c, lin)
    state = jax.jit(lambda x, v: st.init(x, v, grid[0]))(dx, p)
    coeff = jax.tree_util.tree_map(lambda a: a[5], st.coefficients(grid))
    rec = {"particles": list(particles), "box": list(box), "pdims": list(pd), "devices": ndev, "domain": d.describe()}
    rec["step"], _ = measure(lambda s, cc: st.step(s, cc), (state, coeff), reps)
    rec["force"], _ = measure(lambda x: pm_forces(d, x), (dx,), reps)

    def sim10(c, l):
        snap, = jaxpm.simulate(d, c, l, a_init=0.1, a_out=[1.0], steps=10)
        return jaxpm.density(d, snap.dx)

    rec["sim10"], rho = measure(sim10, (c, lin), max(2, reps // 3))
    check_migration()
    return rec, rho, d


def fft_compare(n, ndev, reps):
    d = jaxpm.Domain.create(n, float(n), pdims=(1, ndev), devices=jax.devices()[:ndev])
    x = jax.jit(lambda: jaxpm.white_noise(d, 1))()
    out = {"ours_r2c": measure(lambda a: fourier.irfftn(fourier.rfftn(a, d), (n, n, n), d), (x,), reps)[0]}
    try:
        import jaxdecomp

        out["jaxdecomp_c2c"] = measure(lambda a: jaxdecomp.fft.pifft3d(jaxdecomp.fft.pfft3d(a.astype(jnp.complex64))).real,
                                       (x,), reps)[0]
    except Exception as exc:  # not installed, or fails on this platform: recorded
        out["jaxdecomp_c2c"] = {"status": "error", "error": f"{type(exc).__name__}: {str(exc)[:500]}"}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="256,512")
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--out", default=str(HERE / "results"))
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    env = environment()
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H%M")
    kind = env["device"]["kind"].lower().replace(" ", "-")
    path = pathlib.Path(args.out) / f"distributed_{kind}x{jax.device_count()}_{stamp}.json"
    result = {"benchmark": "bench_distributed", "date": stamp, "environment": env, "dtype": "float32", "B": 1,
              "sizes": {}}
    save = lambda: write_json_atomic(path, result)
    for n in sizes:
        res = result["sizes"][str(n)] = {"layouts": [], "local": {}}
        ref_rho = ref_pk = None
        for name, pd, ndev in layouts(jax.device_count()):
            rec, rho, d = bench_layout(n, pd, ndev, args.reps)
            rec["name"] = name
            if rho is not None:
                pk = np.asarray(power_spectrum(rho - 1.0, d.box, compensate="cic", modes=domain_modes(d)).power)
                host = np.asarray(rho)
                if ref_rho is None:
                    ref_rho, ref_pk = host, pk
                else:
                    rec["vs_one_device"] = {"max_abs_diff_over_max": float(np.abs(host - ref_rho).max() / np.abs(ref_rho).max()),
                                            "pk_max_rel_diff": float(np.max(np.abs(pk / ref_pk - 1)))}
                del host
            del rho
            res["layouts"].append(rec)
            print(n, name, {k: rec[k].get("median_s") for k in ("step", "force", "sim10")}, rec.get("vs_one_device"), flush=True)
            save()
        for p in sorted({2, 4, 8, jax.device_count()}):
            if 1 < p <= jax.device_count():
                rec, rho, _ = bench_layout(n, (1, 1), 1, args.reps, particles=(n, n // p, n), box=(n, n // p, n))
                del rho
                res["local"][str(p)] = rec
                t1 = rec["step"].get("median_s")
                for lay in res["layouts"]:
                    if lay["devices"] == p and t1 and lay["step"].get("median_s"):
                        lay["step_comm_share"] = 1.0 - t1 / lay["step"]["median_s"]
                        lay["step_speedup"] = res["layouts"][0]["step"]["median_s"] / lay["step"]["median_s"]
                        lay["sim10_speedup"] = res["layouts"][0]["sim10"]["median_s"] / lay["sim10"]["median_s"]
                save()
                res["fft"] = fft_compare(n, p, args.reps)
                save()
                print(n, "local", p, t1, "fft", {k: v.get("median_s") for k, v in res["fft"].items()}, flush=True)
        for lay in res["layouts"][1:]:
            print(f"N={n} {lay['name']}: step speedup {lay.get('step_speedup')}, comm share {lay.get('step_comm_share')}, "
                  f"sim10 speedup {lay.get('sim10_speedup')}", flush=True)
    print("wrote", path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
