"""Time the pieces of the distributed paint/read on the devices present (diagnostic, not a benchmark)."""
import sys, time, pathlib
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
import jax, jax.numpy as jnp, numpy as np
import jaxpm
from jaxpm import halo
from jaxpm.forces import paint_mesh, read_mesh, pm_forces

def t(f, *a, reps=5):
    f = jax.jit(f); jax.block_until_ready(f(*a))
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter(); jax.block_until_ready(f(*a)); ts.append(time.perf_counter() - t0)
    return round(1e3 * float(np.median(ts)), 2)

n = int(sys.argv[1]) if len(sys.argv) > 1 else 512
nd = jax.device_count()
x = jnp.ones(n**3 // nd, jnp.int32)
print("cumsum 1 device", n**3 // nd, t(lambda a: jnp.cumsum(a), x), "ms")
print("argsort bool 1 device", t(lambda a: jnp.argsort(a > 0), x), "ms")
d1 = jaxpm.Domain.create(n, float(n), devices=jax.devices()[:1])
c = jaxpm.Cosmology()
lin1 = jax.jit(lambda: jaxpm.linear_field(d1, c, jaxpm.white_noise(d1, 0)))()
dx1, _ = jax.jit(lambda l: jaxpm.lpt(d1, c, l, 0.5))(lin1)
pos1 = jax.jit(d1.to_mesh_units)(dx1)
print("1 dev paint", t(lambda p: paint_mesh(d1, p, 1.0), pos1), "read", t(lambda m, p: read_mesh(d1, m, p), jnp.ones(d1.mesh_shape), pos1), "force", t(lambda x: pm_forces(d1, x), dx1))
for cap in (0.1, 0.01):
    d = jaxpm.Domain.create(n, float(n), pdims=(1, nd), capacity=cap)
    pos = d.put(np.asarray(pos1)); dx = d.put(np.asarray(dx1))
    m = d.put(np.ones(d.mesh_shape, np.float32))
    print(f"{nd} dev cap {cap} halo {d.halo}: paint", t(lambda p: paint_mesh(d, p, 1.0), pos), "read", t(lambda mm, p: read_mesh(d, mm, p), m, pos),
          "to_mesh_units", t(d.to_mesh_units, dx), "force", t(lambda x: pm_forces(d, x), dx))
    old = halo._poison
    halo._poison = lambda x, dropped, axes, cap: x
    print("   without the overflow callback: paint", t(lambda p: paint_mesh(d, p, 1.0), pos), "read", t(lambda mm, p: read_mesh(d, mm, p), m, pos))
    halo._poison = old
