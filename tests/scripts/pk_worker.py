"""Worker for the distributed P(k) tests: 8 devices in total (1 process x 8, or 2 processes x 4).

Usage: python pk_worker.py OUT.npz [distributed-method]
Builds a known float64 field (seeded numpy), shards it P('x','y') over a (2,4) mesh, estimates P(k)
with a sharded pencil FFT as the Fourier provider, and saves the spectra plus the sizes of the
all-gathers in the compiled program. The test compares with the one-device estimate.
"""
import os
import re
import sys

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

from jaxpm import distributed as dist
from jaxpm.observables import power_spectrum

SHAPE, BOX = (16, 24, 32), 100.0


def known_field():
    return np.random.default_rng(42).standard_normal(SHAPE)


def pencil_modes_for(mesh):
    """A sharded Fourier provider: shard_map + all_to_all pencil FFT (full complex FFT, natural axes)."""

    def local(a):
        a = jnp.fft.fft(a, axis=2)
        a = lax.all_to_all(a, "y", 2, 1, tiled=True)
        a = jnp.fft.fft(a, axis=1)
        a = lax.all_to_all(a, "x", 1, 0, tiled=True)
        return jnp.fft.fft(a, axis=0)

    fft = jax.shard_map(local, mesh=mesh, in_specs=P("x", "y"), out_specs=P(None, "x", "y"))

    def modes(field, box):
        fk = fft(field.astype(jnp.complex128 if field.dtype == jnp.float64 else jnp.complex64))
        kvec = []
        for axis, (n, L) in enumerate(zip(field.shape, box)):
            s = [1, 1, 1]
            s[axis] = n
            kvec.append((2 * np.pi * jnp.fft.fftfreq(n, L / n)).astype(field.dtype).reshape(s))
        return fk, kvec, 1.0  # full FFT: every entry is one mode

    return modes


if __name__ == "__main__":
    os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
    info = dist.initialize(sys.argv[2] if len(sys.argv) > 2 else "auto")
    jax.config.update("jax_enable_x64", True)
    mesh = jax.make_mesh((2, 4), ("x", "y"), axis_types=(AxisType.Auto,) * 2)
    ref = known_field()
    x = jax.make_array_from_callback(SHAPE, NamedSharding(mesh, P("x", "y")), lambda idx: ref[idx])
    modes = pencil_modes_for(mesh)
    results = {}
    for name, kw in {"auto": {}, "cic": {"compensate": "cic"}, "los": {"los": 2, "compensate": "cic"}}.items():
        f = jax.jit(lambda v, kw=kw: power_spectrum(v, BOX, modes=modes, drop_empty=False, **kw))
        ps = f(x)
        results[name + "_k"], results[name + "_p"], results[name + "_n"] = (np.asarray(a) for a in ps)
        hlo = f.lower(x).compile().as_text()
        sizes = []
        for m in re.finditer(r"= (\w+)\[([\d,]*)\][^ ]* all-gather(?:-start)?\(", hlo):
            sizes.append(int(np.prod([int(d) for d in m.group(2).split(",") if d])))
        results[name + "_allgather_sizes"] = np.array(sizes + [0])
        results[name + "_n_allreduce"] = np.array(len(re.findall(r" all-reduce(?:-start)?\(", hlo)))
    if dist.is_coordinator():
        np.savez(sys.argv[1], **results)
    dist.barrier("pk done")
    print(f"PK OK process {info.process_index}/{info.process_count}", flush=True)
