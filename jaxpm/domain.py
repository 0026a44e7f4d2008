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
    """

    particles: tuple[int, int, int]
    box: tuple[float, float, float]
    B: int = 1
    dtype: str = "float32"

    @classmethod
    def create(cls, particles: int | Sequence[int], box: float | Sequence[float], B: int = 1, dtype: str = "float32") -> "Domain":
        """Validated constructor; raises :class:`ConfigError` naming the bad parameter."""
        validate(particles, box, B, dtype)
        n = tuple(int(v) for v in _triple(particles, "particles"))
        L = tuple(float(v) for v in _triple(box, "box"))
        return cls(particles=n, box=L, B=int(B), dtype=str(dtype))

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
