"""Time and compiled memory of the painting / read-out kernels: vectorised reference vs node-looped.

For N^3 particles (uniform random positions) on an N^3 mesh, float32, CIC: paint with unit weights,
read out a stack of 3 meshes (the force), and the gradient of the read-out with respect to the
positions, each as the reference (:func:`jaxpm.painting.paint` / ``readout`` and autodiff) and as the
node-looped kernel (``paint_nodes`` / ``readout_nodes`` / ``readout_grad``). Median of ``--reps``.

    python benchmarks/tools/paint_kernels.py --sizes 256,512
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from bench_adjoint import _mem, _time  # noqa: E402
from jaxpm import painting as P  # noqa: E402


def _run(fn, args, reps):
    c = jax.jit(fn).lower(*args).compile()
    mem = _mem(c)
    return {"ms": 1e3 * _time(c, args, reps)[0], "GiB": None if mem is None else mem / 2**30}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="64")
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args(argv)
    rows = []
    for N in (int(x) for x in a.sizes.split(",")):
        shape = (N, N, N)
        pos = jax.random.uniform(jax.random.key(0), (N**3, 3), jnp.float32, 0.0, N)
        meshes = jax.random.normal(jax.random.key(1), (3,) + shape, jnp.float32)
        cases = {
            "paint/reference": (lambda p: P.paint(shape, p, 1.0), (pos,)),
            "paint/nodes": (lambda p: P.paint_nodes(shape, p, 1.0), (pos,)),
            "readout3/reference": (lambda m, p: P.readout(m, p), (meshes, pos)),
            "readout3/nodes": (lambda m, p: P.readout_nodes(m, p), (meshes, pos)),
            "readout3_grad_pos/reference": (jax.grad(lambda p, m: jnp.sum(P.readout(m, p))), (pos, meshes)),
            "readout3_grad_pos/nodes": (lambda p, m: P.readout_grad(m, p), (pos, meshes)),
        }
        for name, (fn, args) in cases.items():
            row = {"N": N, "case": name} | _run(fn, args, a.reps)
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


if __name__ == "__main__":
    main()
