"""Reading a sweep: optimal eps, the recommended operating point, heat maps and curves.

Optimal eps.  With readout noise sigma, the error of a finite-difference echo estimator of order p
(p = 2 centered, p = 1 one-sided) is, to leading order,

    error(eps)^2 = A eps^(2p) + C / eps^2 + D        (bias^2 ~ eps^(2p), noise^2 ~ (sigma / eps)^2)

fitted by non-negative least squares with relative weights; its minimum is at
eps* = (C / (p A))^(1 / (2p + 2)), i.e. eps* ~ sigma^(1/3) for the centered estimator.  ``D`` absorbs
what eps does not change (a noise floor, mismatch, damping).

Operating point.  For a target fidelity (cosine >= target by default), for every combination of the
non-ideality levels, the cheapest setting that reaches it: the fewest averaged echoes, then the eps
with the best fidelity; and, per non-ideality axis, the largest level at which some setting reaches it.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import nnls

from hamsim.design.store import SweepResults
from hamsim.errors import ValidationError

ECHO_AXES = ("eps", "echoes")


def optimal_eps(eps: np.ndarray, error: np.ndarray, order: int = 2) -> tuple[float, tuple[float, float, float]]:
    """eps* of the fit error^2 = A eps^(2 order) + C eps^-2 + D (see the module docstring).

    Returns (eps*, (A, C, D)); eps* is NaN when the data show no interior trade-off (A or C zero)."""
    eps = np.asarray(eps, float)
    err = np.asarray(error, float)
    ok = np.isfinite(err) & (err > 0)
    if ok.sum() < 3:
        return math.nan, (math.nan, math.nan, math.nan)
    e, y = eps[ok], err[ok] ** 2
    X = np.stack([e ** (2 * order), e**-2.0, np.ones_like(e)], axis=1)
    w = 1.0 / y  # relative residuals: every decade of error counts alike
    scale = np.abs(X * w[:, None]).max(axis=0)
    coef, _ = nnls(X * w[:, None] / scale, y * w)
    A, C, D = coef / scale
    if A <= 0 or C <= 0:
        return math.nan, (float(A), float(C), float(D))
    return float((C / (order * A)) ** (1.0 / (2 * order + 2))), (float(A), float(C), float(D))


def _order(res: SweepResults) -> int:
    return 2 if res.config.raw["echo"]["estimator"] == "centered" else 1


def _grid(res: SweepResults) -> None:
    if res.config.mode != "grid":
        raise ValidationError("file", "this view needs a grid sweep (random samples have no grid)")


def level_axes(res: SweepResults) -> list[str]:
    """Swept axes other than the echo settings (non-ideality levels, n, steps)."""
    return [a for a in res.axes if a not in ECHO_AXES]


@dataclass(frozen=True)
class OperatingPoint:
    levels: dict[str, Any]
    eps: float | None
    echoes: int | None
    value: float
    fitted_eps: float
    meets_target: bool


def operating_points(res: SweepResults, target: float, metric: str = "cosine") -> list[OperatingPoint]:
    """For each combination of level values: the cheapest (echoes, eps) reaching ``target``."""
    _grid(res)
    if metric not in res.metrics:
        raise ValidationError("metric", f"unknown metric {metric!r}; in the file: {sorted(res.metrics)}")
    higher_better = metric in ("cosine",)
    axes = res.axes
    lv = level_axes(res)
    vals = np.where(res.done, res.metrics[metric], np.nan)
    out = []
    for combo in itertools.product(*[range(len(res.coords[a])) for a in lv]):
        sel: list[Any] = [slice(None)] * len(axes)
        for a, i in zip(lv, combo):
            sel[axes.index(a)] = i
        sub = vals[tuple(sel)]
        rest = [a for a in axes if a not in lv]  # echo axes, in file order
        levels = {a: res.coords[a][i].item() for a, i in zip(lv, combo)}
        best = None
        for idx in np.ndindex(sub.shape):
            v = sub[idx]
            if not np.isfinite(v):
                continue
            setting = {a: res.coords[a][i].item() for a, i in zip(rest, idx)}
            ok = v >= target if higher_better else v <= target
            cost = setting.get("echoes", res.config.raw["echo"]["echoes"])
            # meeting the target: the cheapest setting, then the best value; missing it: the best value
            # whatever it costs (how close the device can get, not the cheapest miss)
            key = (not ok, cost if ok else 0, -v if higher_better else v)
            if best is None or key < best[0]:
                best = (key, setting, v, ok)
        fitted = math.nan
        if "eps" in rest and "error" in res.metrics:
            err = np.where(res.done, res.metrics["error"], np.nan)[tuple(sel)]
            ei = rest.index("eps")
            e = np.moveaxis(err, ei, 0).reshape(len(res.coords["eps"]), -1)[:, 0]
            fitted = optimal_eps(res.coords["eps"], e, _order(res))[0]
        if best is None:
            out.append(OperatingPoint(levels, None, None, math.nan, fitted, False))
            continue
        _, setting, v, ok = best
        eps = setting.get("eps", res.config.raw["echo"]["eps"])
        out.append(OperatingPoint(levels, eps, int(setting.get("echoes", res.config.raw["echo"]["echoes"])),
                                  float(v), fitted, bool(ok)))
    return out


def tolerances(points: list[OperatingPoint], res: SweepResults) -> dict[str, Any]:
    """Per level axis: the largest level (others at their first value) at which the target is met."""
    lv = level_axes(res)
    first = {a: res.coords[a][0].item() for a in lv}
    out: dict[str, Any] = {}
    for a in lv:
        ok = [p.levels[a] for p in points if p.meets_target
              and all(p.levels[b] == first[b] for b in lv if b != a)]
        if a == "quality_factor":
            out[a] = min(ok) if ok else None  # lowest Q tolerated
        else:
            out[a] = max(ok) if ok else None
    return out


def format_report(res: SweepResults, target: float, metric: str = "cosine") -> str:
    """The text report: completeness, the operating point per level combination, tolerances."""
    lines = [f"sweep: {res.config.n_points} points ({int(res.done.sum())} done), axes "
             + ", ".join(f"{a}[{len(res.coords[a])}]" for a in res.axes)]
    if res.config.mode != "grid":
        v = np.where(res.done.ravel(), res.metrics[metric].ravel(), np.nan)
        i = int(np.nanargmax(v)) if metric == "cosine" else int(np.nanargmin(v))
        lines.append(f"best sampled point: {res.config.values(i)}  {metric} = {v[i]:.6g}")
        lines.append(f"points meeting {metric} {'>=' if metric == 'cosine' else '<='} {target}: "
                     f"{int(np.sum(v >= target if metric == 'cosine' else v <= target))}")
        return "\n".join(lines)
    pts = operating_points(res, target, metric)
    lines.append(f"recommended operating point for {metric} {'>=' if metric == 'cosine' else '<='} {target}:")
    for p in pts:
        lv = ", ".join(f"{k}={v:g}" for k, v in p.levels.items()) or "(fixed levels)"
        fit = "" if math.isnan(p.fitted_eps) else f"  fitted optimal eps {p.fitted_eps:.3g}"
        if p.eps is None:
            lines.append(f"  {lv}: no completed point")
        elif p.meets_target:
            lines.append(f"  {lv}: eps={p.eps:g}, echoes={p.echoes}  ({metric} {p.value:.6g}){fit}")
        else:
            lines.append(f"  {lv}: target not reached (best eps={p.eps:g}, echoes={p.echoes}, "
                         f"{metric} {p.value:.6g}){fit}")
    tol = tolerances(pts, res)
    if tol:
        lines.append("tolerated (others at their first value): "
                     + ", ".join(f"{a} {'>=' if a == 'quality_factor' else '<='} {v:g}" if v is not None
                                 else f"{a}: none" for a, v in tol.items()))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------- plots
def _reduce(res: SweepResults, metric: str, keep: list[str]) -> np.ndarray:
    """The metric over the ``keep`` axes: eps at its best (max cosine / min error), others at index 0."""
    arr = np.where(res.done, res.metrics[metric], np.nan)
    better_max = metric == "cosine"
    for a in reversed(res.axes):
        if a in keep:
            continue
        ax = res.axes.index(a)
        if a == "eps":
            with np.errstate(all="ignore"):
                arr = np.nanmax(arr, axis=ax) if better_max else np.nanmin(arr, axis=ax)
        else:
            arr = np.take(arr, 0, axis=ax)
    order = [a for a in res.axes if a in keep]
    return np.transpose(arr, [order.index(a) for a in keep])


def plot_report(res: SweepResults, out_dir: str | Path, target: float, metric: str = "cosine") -> list[Path]:
    """Heat maps of every pair of swept axes, error vs eps per level (optimal eps marked), fidelity vs Q."""
    import matplotlib.pyplot as plt  # the caller's backend (the CLI selects Agg)

    _grid(res)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    multi = [a for a in res.axes if len(res.coords[a]) > 1]
    for a, b in list(itertools.combinations(multi, 2))[:6]:
        z = _reduce(res, metric, [a, b])
        fig, ax = plt.subplots(figsize=(5, 4))
        im = ax.imshow(z.T, origin="lower", aspect="auto", cmap="viridis")
        ax.set_xticks(range(len(res.coords[a])), [f"{v:.3g}" for v in res.coords[a]], rotation=45)
        ax.set_yticks(range(len(res.coords[b])), [f"{v:.3g}" for v in res.coords[b]])
        ax.set_xlabel(a)
        ax.set_ylabel(b)
        if metric == "cosine" and np.any(np.isfinite(z)):
            ax.contour(z.T, levels=[target], colors="w", linewidths=1)
        fig.colorbar(im, ax=ax, label=metric)
        ax.set_title(f"{metric} (eps at its best)" if "eps" not in (a, b) else metric)
        fig.tight_layout()
        files.append(out / f"heatmap_{a}_{b}.png")
        fig.savefig(files[-1], dpi=100)
        plt.close(fig)
    if "eps" in res.axes and "error" in res.metrics:
        lv = [a for a in level_axes(res) if len(res.coords[a]) > 1]
        curve = lv[0] if lv else None
        fig, ax = plt.subplots(figsize=(5.5, 4))
        keep = ["eps"] + ([curve] if curve else [])
        err = _reduce(res, "error", keep)
        eps = res.coords["eps"]
        for j in range(err.shape[1] if curve else 1):
            e = err[:, j] if curve else err
            label = f"{curve} = {res.coords[curve][j]:.3g}" if curve else "error"
            line, = ax.loglog(eps, e, "o-", label=label)
            e_star, (A, C, D) = optimal_eps(eps, e, _order(res))
            if np.isfinite(e_star):
                fit = math.sqrt(A * e_star ** (2 * _order(res)) + C / e_star**2 + D)
                ax.plot([e_star], [fit], "*", ms=14, color=line.get_color())
        ax.set_xlabel("eps")
        ax.set_ylabel("relative gradient error (rms)")
        ax.set_title("error vs eps (star: fitted optimal eps)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        files.append(out / "error_vs_eps.png")
        fig.savefig(files[-1], dpi=100)
        plt.close(fig)
    if "quality_factor" in res.axes:
        q = res.coords["quality_factor"]
        fig, ax = plt.subplots(figsize=(5, 4))
        ax.semilogx(q, _reduce(res, "cosine", ["quality_factor"]), "o-")
        ax.axhline(target, ls="--", color="gray")
        ax.set_xlabel("quality factor Q")
        ax.set_ylabel("cosine to the exact gradient (eps at its best)")
        fig.tight_layout()
        files.append(out / "fidelity_vs_quality_factor.png")
        fig.savefig(files[-1], dpi=100)
        plt.close(fig)
    return files
