#!/usr/bin/env python
"""Strong and weak scaling of the distributed engine over the devices of one host (issue #8).

Usage:
    python benchmarks/scaling.py [--strong 512,1024] [--weak 256] [--devices 1,2,4,8] [--reps 5]
                                 [--out benchmarks/results]

Strong scaling: for each N in --strong, one FastPM step, one force and 2LPT + 10 steps (see
``bench_distributed.bench_layout``) on P = 1, 2, 4, 8 devices (those present), pdims the Domain's
default (most square). Efficiency = T(1) / (P T(P)); where N^3 does not fit one device, relative to
the smallest P that ran. Communication share: 1 - T(local problem on one device) / T(P), the local
problem being one device's block (N/px x N/py x N particles).
Weak scaling: --weak n particles per device side on one device, (n px, n py, n) on P devices.

Writes ``scaling_<device>x<count>_<time>.json`` and a PNG of time and efficiency against P.
Out-of-memory and other failures are results (recorded, the sweep goes on).
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

import jaxpm  # noqa: E402
from bench_distributed import bench_layout  # noqa: E402
from bench_engine import environment, write_json_atomic  # noqa: E402


def _median(rec, key):
    r = rec.get(key) or {}
    return r.get("median_s") if r.get("status") == "ok" else None


def _point(particles, ndev, reps, local=True):
    pd = jaxpm.domain._default_pdims(ndev, particles) if ndev > 1 else (1, 1)
    try:
        rec, rho, _ = bench_layout(particles[0], pd, ndev, reps, particles=tuple(particles))
        del rho
    except Exception as exc:  # e.g. out of memory while making the initial conditions
        return {"particles": list(particles), "devices": ndev, "pdims": list(pd), "status": "error",
                "error": f"{type(exc).__name__}: {str(exc)[:800]}"}
    rec["status"] = "ok"
    if local and ndev > 1 and _median(rec, "step"):
        blk = (particles[0] // pd[0], particles[1] // pd[1], particles[2])
        try:
            loc, rho, _ = bench_layout(blk[0], (1, 1), 1, reps, particles=blk)
            del rho
            if _median(loc, "step"):
                rec["local_step_s"] = _median(loc, "step")
                rec["step_comm_share"] = 1.0 - rec["local_step_s"] / _median(rec, "step")
        except Exception as exc:
            rec["local_error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
    return rec


def plot(result, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a0, a1) = plt.subplots(1, 2, figsize=(11, 4.5))
    for n, pts in result["strong"].items():
        ok = [(p["devices"], _median(p, "sim10")) for p in pts if _median(p, "sim10")]
        if ok:
            a0.loglog(*zip(*ok), "o-", label=f"strong {n}^3, 2LPT + 10 steps")
            base_p, base_t = ok[0]
            a1.semilogx([p for p, _ in ok], [base_t * base_p / (t * p) for p, t in ok], "o-", label=f"strong {n}^3")
    for n, pts in result["weak"].items():
        ok = [(p["devices"], _median(p, "sim10")) for p in pts if _median(p, "sim10")]
        if ok:
            a0.loglog(*zip(*ok), "s--", label=f"weak {n}^3 per device")
            a1.semilogx([p for p, _ in ok], [ok[0][1] / t for _, t in ok], "s--", label=f"weak {n}^3/device")
    a0.set_xlabel("devices")
    a0.set_ylabel("time [s]")
    a1.set_xlabel("devices")
    a1.set_ylabel("efficiency")
    a1.axhline(1, color="gray", lw=0.5)
    for a in (a0, a1):
        a.legend(fontsize=8)
    env = result["environment"]["device"]
    fig.suptitle(f"jaxpm scaling on {env['kind']} x{env['count']}, {result['date']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--strong", default="512,1024")
    ap.add_argument("--weak", default="256")
    ap.add_argument("--devices", default="1,2,4,8")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--out", default=str(HERE / "results"))
    args = ap.parse_args(argv)
    counts = [p for p in (int(v) for v in args.devices.split(",")) if p <= jax.device_count()]
    env = environment()
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H%M")
    kind = env["device"]["kind"].lower().replace(" ", "-")
    path = pathlib.Path(args.out) / f"scaling_{kind}x{jax.device_count()}_{stamp}.json"
    result = {"benchmark": "scaling", "date": stamp, "environment": env, "dtype": "float32", "B": 1,
              "device_counts": counts, "strong": {}, "weak": {}}
    save = lambda: write_json_atomic(path, result)
    for n in [int(v) for v in args.strong.split(",") if v]:
        pts = result["strong"][str(n)] = []
        for p in counts:
            pts.append(_point((n, n, n), p, args.reps))
            print("strong", n, p, _median(pts[-1], "step"), _median(pts[-1], "sim10"), pts[-1].get("step_comm_share"),
                  pts[-1].get("error", "")[:120], flush=True)
            save()
    for n in [int(v) for v in args.weak.split(",") if v]:
        pts = result["weak"][str(n)] = []
        for p in counts:
            pd = jaxpm.domain._default_pdims(p, (n * p, n * p, n)) if p > 1 else (1, 1)
            pts.append(_point((n * pd[0], n * pd[1], n), p, args.reps, local=False))
            print("weak", n, p, _median(pts[-1], "step"), _median(pts[-1], "sim10"), flush=True)
            save()
    plot(result, path.with_suffix(".png"))
    print("wrote", path, path.with_suffix(".png"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
