"""Time and compiled memory of the painting / read-out kernels: vectorised reference vs node-looped.

For N^3 particles on an N^3 mesh, float32, CIC: paint with unit weights, read out a stack of 3 meshes
(the force), and the gradient of the read-out with respect to the positions, each as the reference
(:func:`jaxpm.painting.paint` / ``readout`` and autodiff) and as the node-looped kernel (``paint_nodes`` /
``readout_nodes`` / ``readout_grad``); and ``paint_stack``, 3 weight columns (the force VJP's cotangent)
painted as one scatter of (P, 3) rows into an interleaved (M, 3) mesh (until 2026-12-02: three (M,)
meshes, one scatter each per node; both measured in
``results/paint_kernels_nvidia-h200_512_2026-12-02T1455_lattice.txt``); and the pieces of the adjoint's
fused force + VJP (4-column paint, the 4-mesh gather with weight derivatives, one FFT, the force and the
fused call). Median of ``--reps``.

Positions: ``uniform`` (random over the box: incoherent memory access, the worst case) or ``lattice``
(particles in Lagrangian order, displaced by 1.5 cells rms: what a simulation paints).

    python benchmarks/tools/paint_kernels.py --sizes 256,512 --positions lattice
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
from jaxpm import Domain  # noqa: E402
from jaxpm import painting as P  # noqa: E402
from jaxpm.forces import pm_forces, pm_forces_and_vjp  # noqa: E402


def _run(fn, args, reps):
    c = jax.jit(fn).lower(*args).compile()
    mem = _mem(c)
    return {"ms": 1e3 * _time(c, args, reps)[0], "GiB": None if mem is None else mem / 2**30}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="64")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--positions", default="uniform", choices=("uniform", "lattice"))
    ap.add_argument("--cases", default=None, help="comma list of case names (default all)")
    a = ap.parse_args(argv)
    rows = []
    for N in (int(x) for x in a.sizes.split(",")):
        shape = (N, N, N)
        if a.positions == "uniform":
            pos = jax.random.uniform(jax.random.key(0), (N**3, 3), jnp.float32, 0.0, N)
        else:
            q = jnp.stack(jnp.meshgrid(*[jnp.arange(N, dtype=jnp.float32)] * 3, indexing="ij"), -1).reshape(-1, 3)
            pos = jnp.mod(q + 1.5 * jax.random.normal(jax.random.key(0), q.shape, jnp.float32), N)
        cols = jax.random.normal(jax.random.key(2), (N**3, 3), jnp.float32)
        dom = Domain.create(N, float(N), dtype="float32")  # 1 Mpc/h cells: displacement = mesh units
        disp = (pos - jnp.stack(jnp.meshgrid(*[jnp.arange(N, dtype=jnp.float32)] * 3, indexing="ij"), -1).reshape(-1, 3)).reshape(dom.particles + (3,))
        meshes = jax.random.normal(jax.random.key(1), (3,) + shape, jnp.float32)
        cases = {
            "paint/reference": (lambda p: P.paint(shape, p, 1.0), (pos,)),
            "paint/nodes": (lambda p: P.paint_nodes(shape, p, 1.0), (pos,)),
            "readout3/reference": (lambda m, p: P.readout(m, p), (meshes, pos)),
            "readout3/nodes": (lambda m, p: P.readout_nodes(m, p), (meshes, pos)),
            "readout3_grad_pos/reference": (jax.grad(lambda p, m: jnp.sum(P.readout(m, p))), (pos, meshes)),
            "readout3_grad_pos/nodes": (lambda p, m: P.readout_grad(m, p), (pos, meshes)),
            "paint3/stack": (lambda p, w: P.paint_stack(shape, p, w), (pos, cols)),
            # the pieces of the adjoint's fused force + VJP (jaxpm.forces.pm_forces_and_vjp)
            "paint4/stack_lead": (lambda p, w: P.paint_stack(shape, p, w, lead_weight=1.0), (pos, cols)),
            "readout3_value_grad4/fused": (lambda m, p, w: P.readout_and_grad(m, p, "cic", w, extra=m[0]), (meshes, pos, cols)),
            "rfft/one_mesh": (lambda m: jnp.fft.rfftn(m[0]), (meshes,)),
            "force/pm_forces": (lambda x: pm_forces(dom, x), (disp,)),
            "force_and_vjp/fused": (lambda x, w: pm_forces_and_vjp(dom, x, w), (disp, cols.reshape(disp.shape))),
        }
        if a.cases:
            cases = {k: v for k, v in cases.items() if k in a.cases.split(",")}
        for name, (fn, args) in cases.items():
            row = {"N": N, "case": name} | _run(fn, args, a.reps)
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


if __name__ == "__main__":
    main()
