"""Sharded arrays on disk: every process writes its own shards into one standard ``.npy`` file.

The file is a plain NumPy ``.npy`` (C order) holding the *global* array, so ``np.load(path)`` reads
it whole on any machine, and :func:`load_sharded` gives every process just the slices its devices
need (through ``np.load(mmap_mode="r")``). No array is ever gathered on one host.

Protocol of :func:`save_sharded` (all processes call it with the same arguments):

1. process 0 creates ``.<name>.partial`` beside the final file, holding the ``.npy`` header of the
   global shape and dtype (the data region is left sparse);
2. barrier; each process writes the shards of its devices that have ``replica_id == 0`` (so
   replicated data is written exactly once) at their place in the file, with ``pwrite`` of
   contiguous runs, then ``fsync``;
3. barrier; process 0 renames the file to its final name (atomic on POSIX), then a last barrier, so
   that on return every process sees the complete file.

A reader therefore sees either no file (or the previous one) or the complete new one.

Multi-process use assumes a **shared file system** on which writes of different byte ranges from
different hosts do not clobber each other (local disk for one node; Lustre, GPFS, BeeGFS across
nodes; NFS only with one writing host). On one process any sharding works, including single-device
arrays and plain NumPy arrays.

Checkpoints (:func:`save_checkpoint` / :func:`load_checkpoint`) are a folder with one ``.npy`` per
leaf of a pytree and ``checkpoint.json`` (user metadata, leaf names, shapes, dtypes, versions). A
new checkpoint is built in ``<dir>.partial`` and swapped in by renames; the previous one stays
complete until then (as ``<dir>.old`` during the swap, which :func:`load_checkpoint` falls back to).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from .distributed import barrier, is_coordinator, process_count
from .errors import ConfigError

__all__ = ["save_sharded", "load_sharded", "save_checkpoint", "load_checkpoint", "checkpoint_exists", "checkpoint_meta",
           "CHECKPOINT_FILE", "CHECKPOINT_FORMAT"]

CHECKPOINT_FILE = "checkpoint.json"
CHECKPOINT_FORMAT = 1
_PWRITE_MAX = 1 << 30  # bytes per pwrite call (Linux caps one call near 2 GiB)


# -- one array <-> one .npy ---------------------------------------------------------------------------
def _npy_dtype(dtype, name):
    dt = np.dtype(dtype)
    if dt.kind not in "biufc":  # bfloat16 & co. (ml_dtypes) have no portable .npy description
        raise ConfigError(name, str(dt), "a bool, integer, float or complex NumPy dtype to store in .npy")
    return dt


def save_sharded(path, array, *, overwrite: bool = False) -> Path:
    """Write ``array`` (a global ``jax.Array`` of any sharding, or a NumPy array) to ``path`` (.npy).

    Collective: every process must call it with the same ``path``. Returns the final path.
    Refuses (``ConfigError``) to replace an existing file unless ``overwrite``.
    """
    path = Path(path)
    if path.suffix != ".npy":
        raise ConfigError("path", str(path), "a file name ending in .npy")
    if path.exists() and not overwrite:
        raise ConfigError("path", str(path), "a file that does not exist yet (or overwrite=True)")
    shape = tuple(int(n) for n in np.shape(array))
    dtype = _npy_dtype(array.dtype, "array dtype")
    tmp = path.with_name(f".{path.name}.partial")
    tag = f"jaxpm.shardio:{path}"
    if is_coordinator():
        path.parent.mkdir(parents=True, exist_ok=True)
        mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)  # header + sparse data
        del mm
    barrier(tag + ":created")
    if len(shape) == 0 or 0 in shape:  # scalar or empty: tiny, written whole by process 0
        if is_coordinator():
            with open(tmp, "wb") as fh:  # a file object: np.save would append ".npy" to the name
                np.save(fh, np.asarray(array, dtype))
                fh.flush()
                os.fsync(fh.fileno())
    else:
        offset = np.load(tmp, mmap_mode="r").offset
        fd = os.open(tmp, os.O_WRONLY)
        try:
            for index, block in _my_blocks(array, shape):
                _pwrite_block(fd, offset, shape, index, np.asarray(block, dtype))
            os.fsync(fd)
        finally:
            os.close(fd)
    barrier(tag + ":written")
    if is_coordinator():
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    barrier(tag + ":renamed")
    return path


def _my_blocks(array, shape):
    """(index, data) of the pieces this process writes: its replica-0 shards of a global array;
    a NumPy array or a process-local jax.Array (each process holds its own copy) whole, on process 0."""
    shards = getattr(array, "addressable_shards", None)
    if shards is None or (array.is_fully_addressable and process_count() > 1):
        if is_coordinator():
            yield tuple(slice(0, n) for n in shape), np.asarray(array)
        return
    for s in shards:
        if s.replica_id == 0:
            yield s.index, s.data


def _pwrite_block(fd, offset, shape, index, block):
    """Write ``block`` (the region ``index`` of the C-ordered global array) as contiguous runs."""
    lo = [0 if sl.start is None else sl.start for sl in index] + [0] * (len(shape) - len(index))
    hi = [n if sl.stop is None else sl.stop for sl, n in zip(index, shape)] + list(shape[len(index):])
    nd = len(shape)
    k = nd - 1  # axes after k are complete in the block, so the block is contiguous along them
    while k >= 0 and lo[k] == 0 and hi[k] == shape[k]:
        k -= 1
    item = block.dtype.itemsize
    strides = np.cumprod((shape[1:] + (1,))[::-1])[::-1] * item  # C-order byte strides of the global array
    block = np.ascontiguousarray(block)
    if k < 0:
        _pwrite_all(fd, block, offset)
        return
    for lead in np.ndindex(*block.shape[:k]):
        run = block[lead]  # axes k.. : contiguous piece of the file
        pos = offset + sum((lo[a] + i) * strides[a] for a, i in enumerate(lead)) + lo[k] * strides[k]
        _pwrite_all(fd, run, pos)


def _pwrite_all(fd, data, pos):
    view = memoryview(np.ascontiguousarray(data)).cast("B")
    done = 0
    while done < len(view):
        done += os.pwrite(fd, view[done:done + _PWRITE_MAX], pos + done)


def _fsync_dir(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_sharded(path, sharding=None, *, shape=None, dtype=None):
    """Read a ``.npy`` file into a global ``jax.Array`` placed with ``sharding``.

    Each process reads only the slices its devices hold (memory-mapped). ``sharding``: a
    ``jax.sharding.Sharding``, an array whose ``.sharding`` to copy, or None (default device).
    ``shape`` / ``dtype``: expected values; a mismatch raises ``ConfigError`` naming the file.
    """
    import jax

    path = Path(path)
    try:
        data = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as exc:
        raise ConfigError("path", str(path), f"a readable .npy file ({exc})") from None
    if shape is not None and tuple(data.shape) != tuple(shape):
        raise ConfigError("path", str(path), f"an array of shape {tuple(shape)} (file holds {data.shape})")
    if dtype is not None and data.dtype != np.dtype(dtype):
        raise ConfigError("path", str(path), f"an array of dtype {np.dtype(dtype)} (file holds {data.dtype})")
    if sharding is not None and not isinstance(sharding, jax.sharding.Sharding):
        sharding = sharding.sharding
    if sharding is None:
        return jax.device_put(np.array(data))
    return jax.make_array_from_callback(data.shape, sharding, lambda idx: np.array(data[idx]))


# -- checkpoints -------------------------------------------------------------------------------------
def _leaf_names(tree):
    """Key-path names, leaves and structure; ``Sharding`` objects count as leaves."""
    import jax

    is_leaf = lambda x: isinstance(x, jax.sharding.Sharding)  # noqa: E731
    leaves, treedef = jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_leaf)
    return [jax.tree_util.keystr(p) or "leaf" for p, _ in leaves], [v for _, v in leaves], treedef


def _file_name(i, name):
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip("_.")[:80]
    return f"{i:04d}_{safe or 'leaf'}.npy"


def save_checkpoint(directory, tree, meta: dict | None = None) -> Path:
    """Save a pytree of arrays (any sharding) and a JSON-able ``meta`` dict into ``directory``.

    Collective. Replaces an existing checkpoint at ``directory`` only once the new one is complete.
    """
    from .io import save_json, versions

    directory = Path(directory)
    partial = directory.with_name(directory.name + ".partial")
    old = directory.with_name(directory.name + ".old")
    names, leaves, _ = _leaf_names(tree)
    if is_coordinator():
        if partial.exists():  # left by a run that died while saving: never a valid checkpoint
            shutil.rmtree(partial)
        partial.mkdir(parents=True)
    barrier(f"jaxpm.ckpt:{directory}:start")
    entries = []
    for i, (name, leaf) in enumerate(zip(names, leaves)):
        fname = _file_name(i, name)
        save_sharded(partial / fname, leaf)
        entries.append({"name": name, "file": fname, "shape": list(np.shape(leaf)), "dtype": str(np.dtype(leaf.dtype))})
    if is_coordinator():
        save_json(partial / CHECKPOINT_FILE, {"format": CHECKPOINT_FORMAT, "meta": meta or {}, "leaves": entries,
                                              "versions": versions()})
        _fsync_dir(partial)
        if directory.exists():
            if old.exists():
                shutil.rmtree(old)
            os.replace(directory, old)  # the previous checkpoint stays complete, under .old
        os.replace(partial, directory)
        _fsync_dir(directory.parent)
        if old.exists():
            shutil.rmtree(old)
    barrier(f"jaxpm.ckpt:{directory}:done")
    return directory


def checkpoint_exists(directory) -> bool:
    """True if a complete checkpoint is at ``directory`` (or its ``.old`` copy after an interrupted swap)."""
    return _complete(Path(directory)) is not None


def _complete(directory):
    for d in (directory, directory.with_name(directory.name + ".old")):
        if (d / CHECKPOINT_FILE).is_file():
            return d
    return None


def checkpoint_meta(directory) -> dict:
    """The ``meta`` dict of the checkpoint at ``directory`` (reads no arrays)."""
    import json

    found = _complete(Path(directory))
    if found is None:
        raise ConfigError("checkpoint", str(directory), f"a folder holding {CHECKPOINT_FILE} (a complete checkpoint)")
    return json.loads((found / CHECKPOINT_FILE).read_text())["meta"]


def load_checkpoint(directory, like=None):
    """Read a checkpoint; returns ``(tree, meta)``.

    ``like``: a pytree with the structure of the saved one whose leaves are ``jax.Array`` /
    ``jax.ShapeDtypeStruct`` (with ``.sharding``) or ``Sharding`` objects: each leaf is loaded with
    that sharding and checked against the saved name, shape and dtype. ``like=None`` returns a dict
    ``{leaf name: numpy array}`` (whole arrays, on this host).
    """
    import json

    import jax

    directory = Path(directory)
    found = _complete(directory)
    if found is None:
        raise ConfigError("checkpoint", str(directory), f"a folder holding {CHECKPOINT_FILE} (a complete checkpoint)")
    info = json.loads((found / CHECKPOINT_FILE).read_text())
    if info.get("format") != CHECKPOINT_FORMAT:
        raise ConfigError("checkpoint", str(found), f"format {CHECKPOINT_FORMAT} (file has {info.get('format')})")
    entries = info["leaves"]
    if like is None:
        return {e["name"]: np.load(found / e["file"]) for e in entries}, info["meta"]
    names, targets, treedef = _leaf_names(like)
    if [e["name"] for e in entries] != names:
        raise ConfigError("like", names, f"the leaves saved in {found}: {[e['name'] for e in entries]}")
    out = []
    for e, t in zip(entries, targets):
        sharding = t if isinstance(t, jax.sharding.Sharding) else getattr(t, "sharding", None)
        if not isinstance(t, jax.sharding.Sharding):
            if tuple(t.shape) != tuple(e["shape"]) or np.dtype(t.dtype) != np.dtype(e["dtype"]):
                raise ConfigError("like", f"{e['name']}: {tuple(t.shape)} {np.dtype(t.dtype)}",
                                  f"the saved {tuple(e['shape'])} {e['dtype']}")
        out.append(load_sharded(found / e["file"], sharding, shape=e["shape"], dtype=e["dtype"]))
    return jax.tree_util.tree_unflatten(treedef, out), info["meta"]

