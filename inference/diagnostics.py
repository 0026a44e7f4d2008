"""Convergence and efficiency metrics, defined as the reference does (notes section c).

- ESS of a scalar: numpyro's ``effective_sample_size`` (Geyer's initial monotone sequence, not
  rank-normalised) pooled over all chains, on base (physical) parameters.
- ESS of a group (cosmo = Omega_m, sigma8; bias = b1, b2, bs2, bn2; field = the tracked voxels of
  delta_L): the harmonic mean of its components' ESS.
- N_eval / N_eff: gradient evaluations summed over all chains and kept samples (warm-up excluded),
  divided by the group ESS.
- R-hat: ArviZ's rank-normalised split R-hat (stricter than the classic one); max over the group.
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = ["ess", "group_ess", "rhat", "summarise", "convergence", "to_inference_data"]

RHAT_MAX = 1.01   # Vehtari et al. 2021 recommend R-hat < 1.01 (rank-normalised, as here)
ESS_MIN = 100.0   # effective samples per group before means and intervals are trusted


def ess(x) -> float:
    """Pooled ESS of draws shaped (chains, draws)."""
    from numpyro.diagnostics import effective_sample_size

    x = np.asarray(x, dtype=np.float64)
    if x.shape[1] < 4 or not np.all(np.isfinite(x)):
        return float("nan")
    if np.ptp(x) == 0:
        return float("nan")
    return float(effective_sample_size(x))


def group_ess(values) -> float:
    """Harmonic mean of the ESS of several components."""
    e = np.asarray([ess(v) for v in values])
    if e.size == 0 or not np.all(np.isfinite(e)) or np.any(e <= 0):
        return float("nan")
    return float(len(e) / np.sum(1.0 / e))


def rhat(x) -> float:
    x = np.asarray(x, dtype=np.float64)
    if x.shape[0] < 2 or x.shape[1] < 4:
        return float("nan")
    try:
        import arviz as az
    except ImportError:  # a GPU image without ArviZ: blackjax's (non-rank-normalised) R-hat
        from blackjax.diagnostics import potential_scale_reduction

        return float(potential_scale_reduction(x))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(az.rhat(x))


def summarise(scalars: dict, voxels, n_grads_total: float, groups: dict, truth: dict | None = None) -> dict:
    """Per-parameter and per-group summary.

    Args:
        scalars: name -> draws (chains, draws) of base parameters.
        voxels: (chains, draws, n_voxels) tracked delta_L voxels (group "field").
        n_grads_total: gradient evaluations of all chains over the kept draws.
        groups: group name -> parameter names.
        truth: optional true values (for the 2-sigma check reported per parameter).
    """
    n_draws = min((np.shape(x)[-1] for x in scalars.values()), default=0)
    if n_draws < 2:
        raise ValueError(f"{n_draws} kept draw(s) per chain: nothing to summarise (the run ended within its burn-in; "
                         "sample longer or lower burn_in)")
    out = {"parameters": {}, "groups": {}}
    for name, x in scalars.items():
        x = np.asarray(x)
        flat = x.reshape(-1)
        row = {"mean": float(flat.mean()), "std": float(flat.std()),
               "q05": float(np.quantile(flat, 0.05)), "q95": float(np.quantile(flat, 0.95)),
               "ess": ess(x), "rhat": rhat(x)}
        if truth is not None and name in truth:
            row["truth"] = float(truth[name])
            row["pull"] = (row["mean"] - row["truth"]) / row["std"] if row["std"] > 0 else float("nan")
        out["parameters"][name] = row
    allgroups = dict(groups)
    vox = np.asarray(voxels)
    for gname, names in allgroups.items():
        e = group_ess([scalars[n] for n in names])
        out["groups"][gname] = {"ess": e, "rhat_max": float(np.nanmax([out["parameters"][n]["rhat"] for n in names])),
                                "evals_per_ess": n_grads_total / e if e > 0 else float("nan")}
    if vox.size:
        comps = [vox[..., i] for i in range(vox.shape[-1])]
        e = group_ess(comps)
        out["groups"]["field"] = {"ess": e, "rhat_max": float(np.nanmax([rhat(c) for c in comps])),
                                  "evals_per_ess": n_grads_total / e if e > 0 else float("nan")}
    out["n_grads"] = float(n_grads_total)
    return out


def convergence(summary: dict, rhat_max: float = RHAT_MAX, ess_min: float = ESS_MIN) -> dict:
    """Whether every group of a :func:`summarise` result has R-hat below ``rhat_max`` and ESS of at
    least ``ess_min``; ``{"converged": bool, "problems": [one line per failing group]}`` (a NaN R-hat
    or ESS, e.g. from too few draws, is a problem too)."""
    problems = []
    for g, row in summary["groups"].items():
        r, e = row["rhat_max"], row["ess"]
        if not r < rhat_max:
            problems.append(f"{g}: R-hat {r:.3f} (want < {rhat_max})")
        if not e >= ess_min:
            problems.append(f"{g}: ESS {e:.1f} (want >= {ess_min:g})")
    return {"converged": not problems, "problems": problems, "rhat_max": rhat_max, "ess_min": ess_min}


def to_inference_data(scalars: dict, voxels, stats: dict, voxel_index):
    """An ArviZ InferenceData: posterior (scalars and ``field_voxels``), sample_stats."""
    import arviz as az

    post = {k: np.asarray(v) for k, v in scalars.items()}
    post["field_voxels"] = np.asarray(voxels)
    return az.from_dict(posterior=post, sample_stats={k: np.asarray(v) for k, v in stats.items()},
                        coords={"voxel": np.asarray(voxel_index)}, dims={"field_voxels": ["voxel"]})
