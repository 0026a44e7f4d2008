"""The Domain: everything about *where* a simulation lives, validated once.

A Domain holds the particle grid, the box, the force-mesh factor B, the floating-point type and
(for the distributed engine) the device layout. Every public function of the engine takes a Domain
first; sharding, FFT back-ends and halo widths are decided here, never threaded through call sites.

Particles sit on a cubic lattice: particle (i, j, l) has Lagrangian position
``q = (i, j, l) * box / particles`` [Mpc/h] (the lattice includes the origin; the linear field's value
i sits at q_i too). Force and density meshes are *cell-centred*: mesh cell j covers [j h, (j+1) h) and
its value stands at (j + 1/2) h, h = box / (B particles). So every particle starts half a mesh cell
from the mesh nodes, for any B, where CIC/TSC painting responds linearly to small displacements (a
particle sitting on a CIC node responds to |dx| instead, which biases the large-scale growth by
several per cent at B = 1).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from .errors import ConfigError

__all__ = ["Domain"]

_DTYPES = ("float32", "float64")


def _triple(value, name):
    if isinstance(value, (int, float, np.integer, np.floating)):
        return (value,) * 3
    try:
        t = tuple(value)
    except TypeError:
        raise ConfigError(name, value, "a number or three numbers") from None
    if len(t) != 3:
        raise ConfigError(name, value, "a number or three numbers")
    return t


@dataclasses.dataclass(frozen=True)
class Domain:
    """Simulation geometry and layout (hashable: usable as a static jit argument).

    Attributes:
        particles: particles per side (Nx, Ny, Nz), each even and positive.
        box: box side lengths [Mpc/h].
        B: force-mesh refinement: the force mesh has ``B * particles`` cells per side.
        dtype: "float32" or "float64" (float64 needs ``jax_enable_x64``).
        pdims: device grid (px, py): meshes and the particle lattice are split into px x py pencils
            along x and y (z stays whole); (1, 1) is a single device, (1, P) or (P, 1) slabs.
        halo: width [force-mesh cells] of the border each device paints into beyond its own block
            (0 on one device). Particles whose painting stencil lies within it are painted locally and
            their border contributions added to the neighbours (``lax.ppermute``); particles further
            out are migrated to the device that owns their position.
        capacity: migration buffer per device, as a fraction of its particles (see :mod:`jaxpm.halo`).
        device_mesh: the ``jax.sharding.Mesh`` over the devices (axes "x", "y", Auto), or None.
    """

    particles: tuple[int, int, int]
    box: tuple[float, float, float]
    B: int = 1
    dtype: str = "float32"
    pdims: tuple[int, int] = (1, 1)
    halo: int = 0
    capacity: float = 0.0
    device_mesh: Mesh | None = None

    @classmethod
    def create(cls, particles: int | Sequence[int], box: float | Sequence[float], B: int = 1, dtype: str = "float32",
               pdims: Sequence[int] | None = None, halo: int | None = None, capacity: float | None = None,
               devices: Sequence | None = None) -> "Domain":
        """Validated constructor; raises :class:`ConfigError` naming the bad parameter.

        Distribution: ``devices`` defaults to all devices of all processes (``jax.devices()``);
        ``pdims`` (px, py) must multiply to their number (default: the most square split whose
        sides divide the meshes). ``halo`` defaults to a quarter of the smaller block side (at least
        4 cells, at most the block); ``capacity`` to 0.02 of a device's particles when the halo is 16 cells or more, else 0.25.
        """
        validate(particles, box, B, dtype)
        n = tuple(int(v) for v in _triple(particles, "particles"))
        L = tuple(float(v) for v in _triple(box, "box"))
        devs = list(jax.devices() if devices is None else devices)
        mesh_shape = tuple(int(B) * v for v in n)
        pd = _default_pdims(len(devs), n) if pdims is None else _check_pdims(pdims, len(devs))
        _check_divisible(pd, n, mesh_shape)
        if pd == (1, 1):
            if halo not in (None, 0):
                raise ConfigError("halo", halo, "0 (or unset) on a single device")
            return cls(particles=n, box=L, B=int(B), dtype=str(dtype))
        blocks = [m // p for m, p in zip(mesh_shape[:2], pd) if p > 1]
        h = int(min(min(blocks), max(4, min(blocks) // 4))) if halo is None else halo
        if isinstance(h, bool) or not float(h).is_integer() or not 1 <= h <= min(blocks):
            raise ConfigError("halo", halo, f"an integer from 1 to the smallest sharded block side, {min(blocks)} "
                              f"force-mesh cells, for mesh {mesh_shape} on pdims {pd}")
        # with a wide halo (big blocks) hardly any particle leaves it: a small buffer, which costs
        # scatter work on every paint; small blocks are cheap, so give them room
        cap = (0.02 if h >= 16 else 0.25) if capacity is None else capacity
        if isinstance(cap, bool) or not isinstance(cap, (int, float)) or not 0 < cap <= 1:
            raise ConfigError("capacity", capacity, "a fraction in (0, 1] of a device's particles")
        mesh = Mesh(np.asarray(devs, dtype=object).reshape(pd), ("x", "y"),
                    axis_types=(AxisType.Auto, AxisType.Auto))
        return cls(particles=n, box=L, B=int(B), dtype=str(dtype), pdims=pd, halo=int(h), capacity=float(cap),
                   device_mesh=mesh)

    # -- layout -------------------------------------------------------------------------------------
    @property
    def distributed(self) -> bool:
        """True when the domain spans more than one device."""
        return self.device_mesh is not None

    def sharding(self, kind: str = "real", ndim: int = 3):
        """NamedSharding of an array on this domain (None on one device).

        kind "real": meshes and particle arrays, leading axes (x, y) split as P("x", "y"), further
        axes whole; "fourier": rfft outputs P(None, "x", "y") (see :mod:`jaxpm.pfft`); "stack": a stack of
        meshes (C, X, Y, Z) as P(None, "x", "y").
        """
        if self.device_mesh is None:
            return None
        spec = {"real": ("x", "y") + (None,) * (ndim - 2),
                "fourier": (None, "x", "y") + (None,) * (ndim - 3),
                "stack": (None, "x", "y") + (None,) * (ndim - 3)}[kind]
        return NamedSharding(self.device_mesh, P(*spec))

    def constrain(self, x: jax.Array, kind: str = "real") -> jax.Array:
        """``with_sharding_constraint`` to this domain's layout (identity on one device)."""
        s = self.sharding(kind, x.ndim)
        return x if s is None else jax.lax.with_sharding_constraint(x, s)

    def put(self, x, kind: str = "real") -> jax.Array:
        """Place a host or device array on this domain's layout (``jax.device_put``)."""
        s = self.sharding(kind, np.ndim(x))
        return jnp.asarray(x) if s is None else jax.device_put(x, s)

    def fourier_shape(self, shape: Sequence[int]) -> tuple[int, int, int]:
        """Shape of the rfft of a real mesh of ``shape`` on this domain: (X, Y, Zc) with
        Zc = Z // 2 + 1 rounded up to a multiple of py (the padding planes hold zeros)."""
        zc = shape[2] // 2 + 1
        py = self.pdims[1]
        return (shape[0], shape[1], -(-zc // py) * py)

    # -- shapes and sizes --------------------------------------------------------------------------
    @property
    def mesh_shape(self) -> tuple[int, int, int]:
        """Force-mesh cells per side, ``B * particles``."""
        return tuple(self.B * n for n in self.particles)

    @property
    def n_particles(self) -> int:
        return math.prod(self.particles)

    @property
    def volume(self) -> float:
        """Box volume [(Mpc/h)^3]."""
        return math.prod(self.box)

    @property
    def cell_size(self) -> tuple[float, float, float]:
        """Force-mesh cell size per axis [Mpc/h]."""
        return tuple(L / n for L, n in zip(self.box, self.mesh_shape))

    @property
    def particle_spacing(self) -> tuple[float, float, float]:
        """Lattice spacing of the particles per axis [Mpc/h]."""
        return tuple(L / n for L, n in zip(self.box, self.particles))

    @property
    def real_dtype(self):
        return jnp.dtype(self.dtype)

    @property
    def complex_dtype(self):
        return jnp.dtype("complex128" if self.dtype == "float64" else "complex64")

    @property
    def k_nyquist(self) -> float:
        """Nyquist wavenumber of the particle grid along the coarsest axis [h/Mpc]."""
        return min(math.pi / s for s in self.particle_spacing)

    @property
    def k_fundamental(self) -> float:
        """Fundamental wavenumber 2 pi / L of the longest side [h/Mpc]."""
        return 2 * math.pi / max(self.box)

    def lattice(self) -> jax.Array:
        """Lagrangian positions q [Mpc/h], shape (Nx, Ny, Nz, 3)."""
        axes = [jnp.arange(n, dtype=self.real_dtype) * s for n, s in zip(self.particles, self.particle_spacing)]
        return jnp.stack(jnp.meshgrid(*axes, indexing="ij"), axis=-1)

    def to_mesh_units(self, dx: jax.Array) -> jax.Array:
        """Particle positions in force-mesh node units from displacements ``dx`` [Mpc/h].

        Mesh node j stands at (j + 1/2) h, so the coordinate is ``B * index - 1/2 + dx / h``, computed
        this way so that precision is uniform across the box.
        """
        idx = [jnp.arange(n, dtype=dx.dtype) * self.B - 0.5 for n in self.particles]
        grid = jnp.stack(jnp.meshgrid(*idx, indexing="ij"), axis=-1)
        return grid + dx / jnp.asarray(self.cell_size, dx.dtype)

    def describe(self) -> dict:
        return {
            "particles": list(self.particles),
            "box": list(self.box),
            "B": self.B,
            "mesh_shape": list(self.mesh_shape),
            "dtype": self.dtype,
            "pdims": list(self.pdims),
            "halo": self.halo,
            "capacity": self.capacity,
            "devices": 1 if self.device_mesh is None else int(self.device_mesh.devices.size),
        }


def validate(particles, box, B, dtype) -> None:
    """Check a domain's parameters; raise :class:`ConfigError` for the first bad one."""
    for n in _triple(particles, "particles"):
        if isinstance(n, bool) or not float(n).is_integer() or n <= 0 or int(n) % 2:
            raise ConfigError("particles", particles, "positive even integers (particles per side)")
    for L in _triple(box, "box"):
        if not (isinstance(L, (int, float, np.integer, np.floating)) and math.isfinite(L) and L > 0):
            raise ConfigError("box", box, "positive box side lengths in Mpc/h")
    if isinstance(B, bool) or not float(B).is_integer() or B < 1:
        raise ConfigError("B", B, "a positive integer (force mesh = B x particles per side)")
    if dtype not in _DTYPES:
        raise ConfigError("dtype", dtype, " or ".join(_DTYPES))
    if dtype == "float64" and not jax.config.jax_enable_x64:
        raise ConfigError("dtype", dtype, "float32 unless jax.config.update('jax_enable_x64', True) was called first")


def _check_pdims(pdims, n_devices: int) -> tuple[int, int]:
    try:
        pd = tuple(int(v) for v in pdims)
        ok = len(pd) == 2 and all(float(v).is_integer() and v >= 1 for v in pdims)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ConfigError("pdims", pdims, "two positive integers (px, py)")
    if pd[0] * pd[1] != n_devices:
        raise ConfigError("pdims", pdims, f"px * py equal to the number of devices, {n_devices} "
                          "(pass devices=jax.devices()[:px*py] to use fewer)")
    return pd


def _check_divisible(pd, particles, mesh_shape) -> None:
    """The pencil FFT and the block layout need X % px, Y % px and Y % py for both grids."""
    px, py = pd
    for name, (X, Y, _) in (("particles", particles), ("mesh", mesh_shape)):
        if X % px or Y % py or Y % px:
            raise ConfigError("pdims", pd, f"px dividing {name} sides x and y, and py dividing side y "
                              f"({name} = {X} x {Y} x {_})")


def _default_pdims(n_devices: int, particles) -> tuple[int, int]:
    """The most square (px, py), px <= py, with px * py = n_devices that divides the grids."""
    for px in sorted((d for d in range(1, n_devices + 1) if n_devices % d == 0), key=lambda d: abs(d - n_devices / d)):
        for pd in ((px, n_devices // px), (n_devices // px, px)):
            X, Y, _ = particles
            if not (X % pd[0] or Y % pd[1] or Y % pd[0]):
                return pd
    raise ConfigError("devices", n_devices, f"a device count that can split particles {tuple(particles)} into pencils")
