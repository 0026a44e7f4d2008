"""Worker for the shardio tests: run with 8 devices in total (1 process x 8 or 2 processes x 4).

Usage: python shardio_worker.py OUTDIR [distributed-method]
Writes arrays with known content from every process and checks what comes back; prints "SHARDIO OK".
"""
import os
import sys

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")

from jaxpm import distributed as dist  # noqa: E402

info = dist.initialize(sys.argv[2] if len(sys.argv) > 2 else "auto")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
import numpy as np  # noqa: E402
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P  # noqa: E402

from jaxpm import shardio  # noqa: E402
from jaxpm.errors import ConfigError  # noqa: E402

out = sys.argv[1]
print(f"INFO method={info.method} index={info.process_index} count={info.process_count} "
      f"local={info.local_device_count} global={info.device_count}", flush=True)
assert jax.device_count() == 8, jax.device_count()
mesh = Mesh(np.array(jax.devices()).reshape(2, 4), ("x", "y"))


def known(shape, dtype, salt=0):
    return (np.arange(np.prod(shape)).reshape(shape) * 0.5 + salt).astype(dtype)


def put(ref, spec):
    return jax.make_array_from_callback(ref.shape, NamedSharding(mesh, spec), lambda idx: ref[idx])


cases = {
    "pencil": (known((8, 12, 6), np.float32), P("x", "y")),
    "slab_z": (known((4, 6, 8), np.float64, 1), P(None, None, "y")),  # runs of length 2 along the last axis
    "replicated": (known((5, 3), np.int32, 2), P()),
    "particles": (known((64, 3), np.float32, 3), P(("x", "y"))),
    "complex": ((known((8, 4, 3), np.float32) * (1 + 2j)).astype(np.complex64), P("x", "y")),
}
for name, (ref, spec) in cases.items():
    path = os.path.join(out, f"{name}.npy")
    shardio.save_sharded(path, put(ref, spec))
    back = np.load(path)  # plain numpy, whole array
    assert back.dtype == ref.dtype and np.array_equal(back, ref), name
    # read back with a different sharding than written
    other = NamedSharding(mesh, P("y") if ref.ndim >= 1 and ref.shape[0] % 4 == 0 else P())
    arr = shardio.load_sharded(path, other)
    for s in arr.addressable_shards:
        assert np.array_equal(np.asarray(s.data), ref[s.index]), name

# an existing file is never replaced silently
try:
    shardio.save_sharded(os.path.join(out, "pencil.npy"), put(cases["pencil"][0] + 1, P("x", "y")))
    raise AssertionError("overwrite was not refused")
except ConfigError as exc:
    assert "overwrite" in str(exc)
assert np.array_equal(np.load(os.path.join(out, "pencil.npy")), cases["pencil"][0])
shardio.save_sharded(os.path.join(out, "pencil.npy"), put(cases["pencil"][0] + 1, P("x", "y")), overwrite=True)
assert np.array_equal(np.load(os.path.join(out, "pencil.npy")), cases["pencil"][0] + 1)

# checkpoints: save twice (the second replaces the first), load with shardings, check values and meta
ck = os.path.join(out, "ckpt")
refs = {"dx": known((64, 3), np.float32), "p": known((64, 3), np.float32, 7), "a": np.array(0.25)}
state = {k: put(v, P() if v.ndim == 0 else P(("x", "y"))) for k, v in refs.items()}
shardio.save_checkpoint(ck, state, {"step": 3})
state2 = jax.tree_util.tree_map(lambda v: v * 2, state)
shardio.save_checkpoint(ck, state2, {"step": 4})
loaded, meta = shardio.load_checkpoint(ck, state)
assert meta == {"step": 4}, meta
for key in state:
    ref = 2 * refs[key]
    assert loaded[key].sharding == state[key].sharding, key
    for s in loaded[key].addressable_shards:
        assert np.array_equal(np.asarray(s.data), ref[s.index]), key
assert not os.path.exists(ck + ".partial") and not os.path.exists(ck + ".old")
dist.barrier("worker done")
print(f"SHARDIO OK process {info.process_index}/{info.process_count}", flush=True)
