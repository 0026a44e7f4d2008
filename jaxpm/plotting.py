"""The run figure: a density slice and P(k) against linear theory."""

from __future__ import annotations

import io as _io

import numpy as np

from .io import atomic_write

__all__ = ["run_figure"]


def run_figure(path, delta, box, spectra, linear, title=""):
    """Save a two-panel PNG atomically.

    Args:
        delta: the slab to show: density contrast of the last output on the force mesh averaged over
            its first planes along z (2D array), as ``delta[:, :, :thick].mean(axis=2)`` with
            ``thick = max(1, Nz // 16)``; a 3D array is reduced here the same way.
        box: box side [Mpc/h].
        spectra: list of ``(label, k, P)`` measured spectra.
        linear: list of ``(label, k, P)`` linear-theory curves.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    delta = np.asarray(delta)
    if delta.ndim == 3:
        delta = delta[:, :, : max(1, delta.shape[2] // 16)].mean(axis=2)
    slab = np.log10(np.clip(1.0 + delta, 1e-2, None))
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4.8))
    im = ax0.imshow(slab.T, origin="lower", extent=(0, box[0], 0, box[1]), cmap="magma")
    ax0.set_xlabel("x [Mpc/h]")
    ax0.set_ylabel("y [Mpc/h]")
    ax0.set_title(f"log10(1+delta), slab of {box[2] / 16:.3g} Mpc/h")
    fig.colorbar(im, ax=ax0, shrink=0.85)
    for label, k, p in linear:
        ax1.loglog(k, p, "--", lw=1, label=label)
    for label, k, p in spectra:
        ax1.loglog(k, p, lw=1.5, label=label)
    ax1.set_xlabel("k [h/Mpc]")
    ax1.set_ylabel("P(k) [(Mpc/h)^3]")
    ax1.legend(fontsize=8)
    ax1.grid(alpha=0.3, which="both")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return atomic_write(path, lambda fh: fh.write(buf.getvalue()))
