"""Everything a finished run writes: chains (ArviZ netCDF), summary.json, fields, figures."""

from __future__ import annotations

import sys

import datetime as _dt

import jax.numpy as jnp
import numpy as np

from jaxpm.io import device_info, save_json, save_npy, versions
from jaxpm.observables import _bin, cross_correlation, power_spectrum

from . import diagnostics, fields, plots
from .priors import GROUPS

__all__ = ["wiener_correlation", "field_spectra", "write_outputs"]


def wiener_correlation(model, k_edges, th=None):
    """Predicted r(k) between the Kaiser Wiener mean and the true delta_L, per k bin:
    per mode <m d*> = <|m|^2> = w P~ with w = nbar B^2 P~ / (1 + nbar B^2 P~), so r_bin = sqrt(sum w P~ / sum P~)."""
    th = model.fiducial if th is None else th
    dom = model.domain
    cosmo = model.cosmo(th)
    pk = model.pk_cell(cosmo)
    _, D, f = model.growth(cosmo)
    b = model.boost(D, f, th["b1"])
    x = model.nbar * jnp.abs(b) ** 2 * pk
    w = x / (1 + x)
    _, kmod, _ = fields.kgrid(dom, None)  # the model's own rfft grid (padded on a sharded domain)
    weight = fields.mode_weights(dom)
    _, num, cnt = _bin(jnp.broadcast_to(w * pk, kmod.shape), kmod, weight, tuple(k_edges))
    _, den, _ = _bin(jnp.broadcast_to(pk, kmod.shape), kmod, weight, tuple(k_edges))
    keep = np.asarray(cnt) > 0
    return np.sqrt(np.asarray(num)[keep] / np.asarray(den)[keep])


def field_spectra(model, mean_field, draws, true_field, th=None) -> dict:
    """P(k) of the truth, the posterior mean and a few draws; r(k) of each against the truth; Wiener r(k)."""
    box = model.domain.box
    from jaxpm.observables import default_k_edges

    edges = default_k_edges(model.domain.particles, box)
    pt = power_spectrum(true_field, box, k_edges=edges)
    out = {"k": np.asarray(pt.k), "pk_true": np.asarray(pt.power),
           "pk_mean": np.asarray(power_spectrum(mean_field, box, k_edges=edges).power),
           "r_mean": np.asarray(cross_correlation(mean_field, true_field, box, k_edges=edges)[1]),
           "pk_samples": [np.asarray(power_spectrum(d, box, k_edges=edges).power) for d in draws],
           "r_samples": [np.asarray(cross_correlation(d, true_field, box, k_edges=edges)[1]) for d in draws],
           "r_wiener": wiener_correlation(model, edges, th)}
    return out


def write_outputs(out, cfg, model, result: dict, truth: dict | None, true_field=None, log=print) -> dict:
    """Chains, summary, fields and figures of a finished run; returns the summary."""
    d = result["draws"]
    names = model.names
    scalars = {n: d["scalars"][..., i] for i, n in enumerate(names)}
    free = model.free_names(cfg.fixed_values())
    n_grads = float(np.sum(d["n_grads"]))
    groups = {g: tuple(n for n in ns if n in free) for g, ns in GROUPS.items()}
    groups = {g: ns for g, ns in groups.items() if ns}
    summ = diagnostics.summarise({n: scalars[n] for n in free}, d["voxels"], n_grads, groups, truth)
    dim = model.dim_of(cfg.fixed_values())
    stats = {"n_grads": d["n_grads"], "acceptance": d["acceptance"], "divergent": d["divergent"],
             "eevpd": d["energy_sq"] / dim, "lp": d["logdensity"]}
    try:
        idata = diagnostics.to_inference_data({n: scalars[n] for n in free}, d["voxels"], stats, result["voxel_index"])
        idata.to_netcdf(str(out / "chains.nc"))
    except ImportError as exc:  # ArviZ missing (e.g. a bare GPU image): keep every other output
        print(f"chains.nc not written: {exc} (pip install arviz)", file=sys.stderr)
    save_npy(out / "posterior_mean_field.npy", result["mean_field"].mean(0))
    save_npy(out / "posterior_std_field.npy", result["std_field"].mean(0))
    save_npy(out / "last_fields.npy", result["last_field"])
    summary = {
        "config": cfg.as_dict(), "sampler": cfg.sampler, "dim": dim, "n_chains": cfg.chains,
        "n_draws_per_chain": int(d["n_grads"].shape[1]), "summary": summ,
        "burn_in_draws_per_chain": cfg.burn_in,
        "n_grads_burn_in": float(np.sum(result["burn_in_draws"]["n_grads"])) if "burn_in_draws" in result else 0.0,
        "eevpd_mean": float(np.mean(d["energy_sq"]) / dim) if cfg.sampler == "mclmc" else None,
        "acceptance_mean": float(np.mean(d["acceptance"])), "divergent": int(np.sum(d["divergent"])),
        "convergence": diagnostics.convergence(summ),
        "alarms": result["alarms"], "timings": result["timings"], "versions": versions(), "device": device_info(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    try:
        if free:
            plots.plot_traces(out / "traces.png", {n: scalars[n] for n in free}, truth)
        if len(free) > 1:
            plots.plot_corner(out / "corner.png", {n: scalars[n] for n in free}, truth)
        if true_field is not None:
            sp = field_spectra(model, result["mean_field"].mean(0), list(result["last_field"][:3]), true_field, truth)
            plots.plot_spectra(out / "spectra.png", sp)
            summary["spectra"] = {k: (np.asarray(v).tolist()) for k, v in sp.items()}
    except Exception as exc:  # figures must never lose a finished run
        log(f"figures failed: {exc!r}")
    save_json(out / "summary.json", summary)
    return summary
