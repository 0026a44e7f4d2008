"""Where the time of one field-level log-density gradient goes (the unit every sampler pays for).

Times, for ``--chains`` vmapped positions at the reference configuration (64^3, 320 Mpc/h, 1LPT, RSD +
bias, Kaiser), the value and gradient of the whole log-density and of its cosmology-only pieces
(growth table, linear P(k) on the k-grid), median of ``--reps`` calls after compilation.

    python benchmarks/tools/profile_logdensity.py --mesh 64 --chains 8
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def _median_ms(f, *args, reps=20):
    from bench_adjoint import _time

    return 1e3 * _time(f, args, reps)[0]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mesh", type=int, default=64)
    p.add_argument("--cell", type=float, default=5.0)
    p.add_argument("--chains", type=int, default=8)
    p.add_argument("--dtype", default="float64")
    p.add_argument("--reps", type=int, default=20)
    args = p.parse_args(argv)

    import jax

    jax.config.update("jax_enable_x64", args.dtype == "float64")
    import jax.numpy as jnp
    import numpy as np

    from inference.config import InferConfig
    from jaxpm.cosmology import growth_table
    from jaxpm.io import device_info, versions

    cfg = InferConfig.from_mapping(dict(particles=args.mesh, box=args.mesh * args.cell, dtype=args.dtype,
                                        lpt_order=1, precond="kaiser_dyn")).validate()
    model = cfg.model()
    obs = np.asarray(model.mock({k: float(v) for k, v in cfg.truth.items()}, 0)["obs"])
    logdensity = model.logdensity_fn(jnp.asarray(obs))
    x = model.kaiser_init(jax.random.PRNGKey(0), jnp.asarray(obs), args.chains)
    dt = model.domain.real_dtype
    om = jnp.linspace(0.25, 0.35, args.chains, dtype=dt)
    base = model.spec.cosmology

    def growth_loss(o):
        g = growth_table(base.replace(Omega_m=o), dt)
        return g.D1(0.5) + g.f1(0.5)

    def pk_loss(o):
        return jnp.sum(model.pk_cell(base.replace(Omega_m=o)))

    vg = lambda f: jax.jit(jax.vmap(jax.value_and_grad(f)))
    rows = {
        "logdensity_value_and_grad": _median_ms(vg(logdensity), x, reps=args.reps),
        "logdensity_value": _median_ms(jax.jit(jax.vmap(logdensity)), x, reps=args.reps),
        "growth_table_value_and_grad": _median_ms(vg(growth_loss), om, reps=args.reps),
        "growth_table_value": _median_ms(jax.jit(jax.vmap(growth_loss)), om, reps=args.reps),
        "pk_cell_value_and_grad": _median_ms(vg(pk_loss), om, reps=args.reps),
    }
    out = {"config": vars(args), "ms": rows, "device": device_info(), "versions": versions()}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
