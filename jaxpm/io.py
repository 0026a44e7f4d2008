"""Files of a run: atomic writes, output folders that never overwrite silently, run metadata."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from .errors import ConfigError

_UMASK = os.umask(0)
os.umask(_UMASK)

__all__ = ["atomic_write", "save_npy", "save_json", "prepare_output_dir", "versions", "device_info"]


def atomic_write(path, write_fn, suffix="") -> Path:
    """Write ``path`` through ``write_fn(file_object)`` into a temporary file, then rename it.

    Readers see either the old file or the complete new one, never a partial write.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix + ".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write_fn(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def save_npy(path, array) -> Path:
    arr = np.asarray(array)
    return atomic_write(path, lambda fh: np.save(fh, arr))


def save_json(path, obj) -> Path:
    data = json.dumps(obj, indent=1, default=_jsonable).encode()
    return atomic_write(path, lambda fh: fh.write(data))


def _jsonable(x):
    if isinstance(x, (np.ndarray, np.generic)) or hasattr(x, "__array__"):
        return np.asarray(x).tolist()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def prepare_output_dir(out: str | None, overwrite: bool, root: str = "runs") -> Path:
    """Return the folder to write into, creating it.

    Without ``out``: a new ``runs/<UTC time>`` folder (a suffix is added if it exists, so two runs
    never collide). With ``out``: it must be new or empty unless ``overwrite`` is true.
    """
    if out is None:
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        base = Path(root) / stamp
        Path(root).mkdir(parents=True, exist_ok=True)
        for i in range(1000):
            candidate = base if i == 0 else base.with_name(f"{stamp}-{i}")
            try:
                candidate.mkdir()
                return candidate
            except FileExistsError:
                continue
        raise ConfigError("out", str(base), "a folder name not yet taken")
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ConfigError("out", out, "a folder (this is a file)")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise ConfigError("out", out, "a new or empty folder, or add --overwrite")
    path.mkdir(parents=True, exist_ok=True)
    return path


def versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for name in ("jax", "jaxlib", "numpy", "jax-cosmo", "diffrax", "equinox", "jaxpm-engine"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    try:
        here = Path(__file__).resolve().parent
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        sha = commit.stdout.strip()
        out["git_commit"] = sha if commit.returncode == 0 and len(sha) == 40 else None
    except (OSError, subprocess.SubprocessError):
        out["git_commit"] = None
    return out


def device_info() -> dict:
    import jax

    devs = jax.devices()
    return {"platform": devs[0].platform, "kind": devs[0].device_kind, "count": len(devs),
            "processes": jax.process_count(), "host": platform.node()}
