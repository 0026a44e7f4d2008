"""Long runs in chunks with restart checkpoints (forward runs; gradients use :func:`jaxpm.simulate`).

:func:`run_checkpointed` steps the same stepper as :func:`jaxpm.simulate` chunk by chunk (each chunk a
jitted ``lax.scan`` of whole steps, compiled once per chunk length), and after every
``every`` steps writes the particle state -- and the snapshots already taken -- with
:func:`jaxpm.shardio.save_checkpoint`: every process writes its own shards, atomically, and the
previous checkpoint stays until the new one is complete. A run resumed from step k executes
exactly the same compiled chunks on the same inputs as the uninterrupted run, so its result is
identical (tested bitwise); it may be resumed on another device layout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .cosmology import Cosmology, growth_table
from .domain import Domain
from .errors import ConfigError
from .forces import ForceSpec
from .lpt import lpt
from .simulation import Snapshot, make_time_grid
from .steppers import STEPPERS
from .steppers.base import PMState, scan_steps

__all__ = ["run_checkpointed"]


def _state_tree(state: PMState, snaps: list[Snapshot]):
    tree = {"dx": state.dx, "p": state.p, "force": state.force}
    for i, s in enumerate(snaps):
        tree[f"snap{i}_dx"], tree[f"snap{i}_p"] = s.dx, s.p
    return tree


def run_checkpointed(domain: Domain, cosmo: Cosmology, delta_lin: jax.Array, *, directory, every: int,
                     resume: bool = False, a_init: float = 0.1, a_out: Sequence[float] = (1.0,), steps: int = 10,
                     stepper: str = "fastpm", spacing: str = "a", lpt_order: int = 2,
                     force: ForceSpec = ForceSpec(), progress: Callable | None = None, meta: dict | None = None,
                     on_checkpoint: Callable | None = None) -> list[Snapshot]:
    """:func:`jaxpm.simulate` (scanned steppers, a_init > 0) with a checkpoint every ``every`` steps.

    Args:
        directory: checkpoint folder (replaced atomically at each checkpoint).
        every: steps between checkpoints (>= 1).
        resume: continue from the checkpoint in ``directory`` (its ``meta`` and time grid must match).
        meta: JSON-able description of the run stored with each checkpoint and compared on resume
            (e.g. the configuration without layout keys).
        on_checkpoint: ``on_checkpoint(step)`` called after each checkpoint is written.
    """
    from .shardio import checkpoint_exists, save_checkpoint

    if stepper not in STEPPERS:
        raise ConfigError("stepper", stepper, f"one of {', '.join(STEPPERS)} for checkpointed runs")
    if a_init <= 0:
        raise ConfigError("a_init", a_init, "a_init > 0 for checkpointed runs (BullFrog from rest: run without)")
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ConfigError("checkpoint_every", every, "a positive number of steps")
    directory = Path(directory)
    a_out = [float(a) for a in a_out]
    growth = growth_table(cosmo, domain.real_dtype)
    grid, out_index = make_time_grid(cosmo, a_init, a_out, steps, spacing)
    n = len(grid) - 1
    st = STEPPERS[stepper](domain, cosmo, force, growth)
    run_meta = {"run": meta or {}, "grid": [float(a) for a in grid], "stepper": stepper}

    snaps: list[Snapshot] = []
    if resume:
        if not checkpoint_exists(directory):
            raise ConfigError("resume", str(directory), "a folder holding a complete checkpoint (run with --checkpoint-every first)")
        start, state, snaps = _load(directory, domain, run_meta, out_index, a_out)
    else:
        dx, p = jax.jit(lambda c, lin: lpt(domain, c, lin, grid[0], lpt_order, growth=growth_table(c, domain.real_dtype)))(cosmo, delta_lin)
        state = jax.jit(lambda x, v: st.init(x, v, grid[0]))(dx, p)
        start = 0

    bounds = sorted({start, n} | {i for i in out_index if i > start} | {k for k in range(every, n, every) if k > start})
    chunk = jax.jit(lambda s, c, offset: scan_steps(st.step, s, c, offset, n, progress))
    for i, j in zip(bounds[:-1], bounds[1:]):
        state = chunk(state, st.coefficients(np.asarray(grid[i:j + 1])), jnp.int32(i))
        for a, k in zip(a_out, out_index):
            if k == j:
                snaps.append(Snapshot(a, state.dx, state.p))
        if j % every == 0 and j < n:
            save_checkpoint(directory, _state_tree(state, snaps), run_meta | {"step": j, "a": float(grid[j])})
            if on_checkpoint is not None:
                on_checkpoint(j)
    return snaps


def _load(directory, domain, run_meta, out_index, a_out):
    from .shardio import checkpoint_meta, load_checkpoint

    info = checkpoint_meta(directory)
    for key in ("run", "grid", "stepper"):
        if info.get(key) != run_meta[key]:
            raise ConfigError("resume", str(directory), f"a checkpoint of this run (its {key!r} differs: "
                              f"{info.get(key)!r} != {run_meta[key]!r})")
    step = int(info["step"])
    n_snaps = sum(1 for k in out_index if k <= step)
    dtype = domain.real_dtype
    shape = domain.particles + (3,)
    sharding = domain.sharding("real", 4) or jax.sharding.SingleDeviceSharding(jax.devices()[0])
    part = jax.ShapeDtypeStruct(shape, dtype, sharding=sharding)
    like = {"dx": part, "p": part, "force": part}
    for i in range(n_snaps):
        like[f"snap{i}_dx"], like[f"snap{i}_p"] = part, part
    tree, _ = load_checkpoint(directory, like=like)
    state = PMState(dx=tree["dx"], p=tree["p"], force=tree["force"], a=jnp.asarray(info["a"], dtype))
    snaps = [Snapshot(a_out[i], tree[f"snap{i}_dx"], tree[f"snap{i}_p"]) for i in range(n_snaps)]
    return step, state, snaps
