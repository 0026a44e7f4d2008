"""Figures of a run: traces, a corner plot of the scalars with the truth, P(k) and r(k) of posterior fields."""

from __future__ import annotations

import numpy as np

__all__ = ["plot_traces", "plot_corner", "plot_spectra"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_traces(path, scalars: dict, truth: dict | None = None):
    plt = _plt()
    names = list(scalars)
    fig, axes = plt.subplots(len(names), 1, figsize=(8, 1.6 * len(names)), sharex=True)
    for ax, n in zip(np.atleast_1d(axes), names):
        x = np.asarray(scalars[n])
        for c in range(x.shape[0]):
            ax.plot(x[c], lw=0.6)
        if truth and n in truth:
            ax.axhline(truth[n], color="k", ls="--", lw=1)
        ax.set_ylabel(n)
    np.atleast_1d(axes)[-1].set_xlabel("stored draw")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_corner(path, scalars: dict, truth: dict | None = None):
    plt = _plt()
    names = [n for n in scalars if np.ptp(np.asarray(scalars[n])) > 0]
    k = len(names)
    fig, axes = plt.subplots(k, k, figsize=(1.9 * k + 1, 1.9 * k + 1), squeeze=False)
    flat = {n: np.asarray(scalars[n]).reshape(-1) for n in names}
    for i, ni in enumerate(names):
        for j, nj in enumerate(names):
            ax = axes[i, j]
            if j > i:
                ax.axis("off")
                continue
            if i == j:
                ax.hist(flat[ni], bins=30, histtype="step", color="C0")
                if truth and ni in truth:
                    ax.axvline(truth[ni], color="k", ls="--")
            else:
                ax.plot(flat[nj], flat[ni], ",", alpha=0.5, color="C0")
                if truth and ni in truth and nj in truth:
                    ax.axvline(truth[nj], color="k", ls="--", lw=0.8)
                    ax.axhline(truth[ni], color="k", ls="--", lw=0.8)
            if i == k - 1:
                ax.set_xlabel(nj)
            if j == 0 and i > 0:
                ax.set_ylabel(ni)
            ax.tick_params(labelsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_spectra(path, spectra: dict):
    """``spectra``: output of :func:`inference.outputs.field_spectra`."""
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    k = spectra["k"]
    a1.loglog(k, spectra["pk_true"], "k-", label="true delta_L")
    a1.loglog(k, spectra["pk_mean"], "C0-", label="posterior mean")
    for i, p in enumerate(spectra["pk_samples"]):
        a1.loglog(k, p, "C1-", lw=0.6, alpha=0.7, label="posterior draws" if i == 0 else None)
    a1.set_xlabel("k [h/Mpc]")
    a1.set_ylabel("P(k) [(Mpc/h)^3]")
    a1.legend(fontsize=8)
    a2.semilogx(k, spectra["r_mean"], "C0-", label="r(mean, truth)")
    a2.semilogx(k, spectra["r_wiener"], "k--", label="Wiener prediction (Kaiser)")
    for i, r in enumerate(spectra["r_samples"]):
        a2.semilogx(k, r, "C1-", lw=0.6, alpha=0.7, label="r(draw, truth)" if i == 0 else None)
    a2.set_xlabel("k [h/Mpc]")
    a2.set_ylabel("r(k)")
    a2.set_ylim(-0.1, 1.05)
    a2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
