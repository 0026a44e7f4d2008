"""Gradient cost of 2LPT + S steps: checkpointed autodiff vs the reverse-time adjoint.

For each size N and number of steps S, and each autodiff mode, measures the forward run and the
gradient of ``mean(dx_final^2)`` with respect to the white noise: compile time, median run time and
the compiled program's memory (argument + output + temp, from XLA's memory analysis, which is what
the device must hold). Out-of-memory is recorded as a result. Writes
``<out>/adjoint_<device>_<UTC time>.json`` atomically after every measurement.

    python benchmarks/bench_adjoint.py --sizes 128,256,512 --steps 10,40 --modes checkpoint,adjoint
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from jaxpm import Cosmology, Domain, linear_field, simulate, white_noise  # noqa: E402
from jaxpm.io import device_info, save_json, versions  # noqa: E402


def _mem(compiled):
    m = compiled.memory_analysis()
    if m is None:
        return None
    return int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes - m.alias_size_in_bytes)


def _time(fn, args, reps):
    jax.block_until_ready(fn(*args))
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        ts.append(time.perf_counter() - t)
    return float(np.median(ts)), ts


def problem(N, steps, mode, box_per_cell=1.0):
    """The benchmarked functions: ``forward(noise) -> dx`` (2LPT + ``steps`` FastPM steps, float32),
    ``loss(noise) = mean(dx^2)`` and the white noise they take."""
    d = Domain.create(N, N * box_per_cell)
    c = Cosmology()

    def forward(noise):
        s = simulate(d, c, linear_field(d, c, noise), a_init=0.1, a_out=[1.0], steps=steps, autodiff=mode)
        return s[0].dx

    def loss(noise):
        return jnp.mean(forward(noise) ** 2)

    return forward, loss, white_noise(d, 0)


def measure(N, steps, mode, reps, box_per_cell):
    forward, loss, noise = problem(N, steps, mode, box_per_cell)
    row = {"N": N, "steps": steps, "autodiff": mode}
    for name, fn in (("forward", forward), ("grad", jax.grad(loss))):
        try:
            t = time.perf_counter()
            compiled = jax.jit(fn).lower(noise).compile()
            row[f"{name}_compile_s"] = time.perf_counter() - t
            row[f"{name}_compiled_bytes"] = _mem(compiled)
            row[f"{name}_median_s"], row[f"{name}_times_s"] = _time(compiled, (noise,), reps)
            row[f"{name}_status"] = "ok"
        except Exception as exc:  # an out-of-memory is a result
            msg = str(exc)
            row[f"{name}_status"] = "oom" if "RESOURCE_EXHAUSTED" in msg or "out of memory" in msg.lower() else "error"
            row[f"{name}_error"] = msg[:400]
    stats = jax.devices()[0].memory_stats() or {}
    row["bytes_limit"] = stats.get("bytes_limit")
    return row


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="32,64")
    ap.add_argument("--steps", default="10,40")
    ap.add_argument("--modes", default="checkpoint,adjoint")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--box-per-cell", type=float, default=1.0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    a = ap.parse_args(argv)
    dev = device_info()
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H%M")
    path = Path(a.out) / f"adjoint_{dev['kind'].replace(' ', '-').lower()}_{stamp}.json"
    Path(a.out).mkdir(parents=True, exist_ok=True)
    result = {"benchmark": "gradient of 2LPT + S FastPM steps (benchmarks/bench_adjoint.py)",
              "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "device": dev,
              "versions": versions(), "command": " ".join(sys.argv), "dtype": "float32",
              "memory_note": "compiled_bytes = argument + output + temp - alias of the compiled program (XLA)",
              "rows": []}
    print(f"{'N':>5} {'steps':>5} {'mode':>10} {'fwd ms':>9} {'grad ms':>9} {'fwd GiB':>8} {'grad GiB':>9} {'t ratio':>7} {'m ratio':>7}", flush=True)
    for N in (int(x) for x in a.sizes.split(",")):
        for steps in (int(x) for x in a.steps.split(",")):
            for mode in a.modes.split(","):
                row = measure(N, steps, mode, a.reps, a.box_per_cell)
                result["rows"].append(row)
                save_json(path, result)
                f, g = row.get("forward_median_s"), row.get("grad_median_s")
                fm, gm = row.get("forward_compiled_bytes"), row.get("grad_compiled_bytes")
                fmt = lambda x, s=1e3: f"{x * s:9.1f}" if x is not None else f"{'-':>9}"
                print(f"{N:5d} {steps:5d} {mode:>10} {fmt(f)} {fmt(g) if row['grad_status'] == 'ok' else row['grad_status']:>9} "
                      f"{fmt(fm, 2**-30)} {fmt(gm, 2**-30)} "
                      f"{(g / f if f and g else float('nan')):7.2f} {(gm / fm if fm and gm else float('nan')):7.2f}", flush=True)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
