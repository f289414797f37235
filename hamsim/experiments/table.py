"""The results table: per task and HRU type, BPTT and RHEL test metric as mean ± std over seeds.

Accuracy is shown in percent, MSE as it is.  ``std`` is the sample standard deviation (ddof = 1) over seeds.
The gap is mean(RHEL) - mean(BPTT) (negative accuracy gap / positive MSE gap: RHEL is worse); RHEL is
*within one std* of BPTT when |gap| <= the pooled std sqrt((std_RHEL^2 + std_BPTT^2) / 2).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Stats:
    """Mean and sample std of a metric over ``n`` seeds (std NaN for one seed)."""

    mean: float
    std: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Stats:
        v = np.asarray(values, dtype=np.float64)
        if v.size == 0:
            raise ValueError("no values")
        return cls(float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else math.nan, int(v.size))


@dataclass(frozen=True)
class Comparison:
    """RHEL against BPTT: gap = mean_RHEL - mean_BPTT, pooled std, and whether |gap| <= pooled std."""

    gap: float
    pooled_std: float
    within_one_std: bool | None

    @classmethod
    def of(cls, rhel: Stats, bptt: Stats) -> Comparison:
        gap = rhel.mean - bptt.mean
        pooled = math.sqrt((rhel.std ** 2 + bptt.std ** 2) / 2.0)
        within = None if math.isnan(pooled) else bool(abs(gap) <= pooled + 1e-12 * max(1.0, abs(gap)))
        return cls(gap, pooled, within)


@dataclass(frozen=True)
class Row:
    """One line of the table: a task and an HRU type, both algorithms."""

    task: str
    hru: str
    metric: str  # "accuracy (%)" or "mse"
    length: int
    real: bool
    seeds: int  # seeds asked for
    stats: dict[str, Stats]  # algorithm -> stats (missing when no run of it is complete)
    comparison: Comparison | None
    wall_time_s: dict[str, float]  # algorithm -> mean wall time per run
    peak_rss_mb: dict[str, float]  # algorithm -> largest peak resident memory of a run


def display_value(metric: str, value: float) -> float:
    return 100.0 * value if metric == "accuracy" else value


def build_rows(runs: Sequence[dict[str, Any]], seeds: int) -> list[Row]:
    """Rows from run summaries (``RunRecord.summary()`` dicts; incomplete ones are ignored), in the order
    the (task, hru) pairs first appear."""
    order: list[tuple[str, str]] = []
    cells: dict[tuple[str, str], dict[str, list[dict[str, Any]]]] = {}
    for r in runs:
        key = (r["task"], r["hru"])
        if key not in cells:
            order.append(key)
            cells[key] = {}
        if r.get("complete"):
            cells[key].setdefault(r["algorithm"], []).append(r)
    rows = []
    for key in order:
        by_alg = cells[key]
        any_run = next((rs[0] for rs in by_alg.values() if rs), None)
        metric = any_run["metric"] if any_run else ""
        stats = {a: Stats.of([display_value(metric, r["test_metric"]) for r in rs]) for a, rs in by_alg.items()}
        comp = Comparison.of(stats["rhel"], stats["bptt"]) if {"rhel", "bptt"} <= set(stats) else None
        rows.append(Row(
            task=key[0], hru=key[1], metric="accuracy (%)" if metric == "accuracy" else metric,
            length=int(any_run.get("length", 0)) if any_run else 0, real=bool(any_run.get("real")) if any_run else False,
            seeds=seeds, stats=stats, comparison=comp,
            wall_time_s={a: float(np.mean([r["wall_time_s"] for r in rs])) for a, rs in by_alg.items()},
            peak_rss_mb={a: float(np.max([r["peak_rss_mb"] for r in rs])) for a, rs in by_alg.items()}))
    return rows


def _fmt(x: float, metric: str) -> str:
    if math.isnan(x):
        return "–"
    if metric.startswith("accuracy"):
        return f"{x:.1f}"
    return f"{x:.3g}"


def _cell(s: Stats | None, metric: str, seeds: int) -> str:
    if s is None:
        return "–"
    text = f"{_fmt(s.mean, metric)} ± {_fmt(s.std, metric)}"
    return text if s.n == seeds else f"{text} (n={s.n})"


def _gap(c: Comparison | None, metric: str) -> str:
    if c is None:
        return "–"
    sign = "+" if c.gap >= 0 else "−"
    return f"{sign}{_fmt(abs(c.gap), metric)}"


def markdown(rows: Sequence[Row], runs: Sequence[dict[str, Any]], meta: dict[str, Any]) -> str:
    """The results as a Markdown document: the table, then every run."""
    out = [f"# Results: {meta.get('name', '')}", ""]
    if meta.get("description"):
        out += [meta["description"], ""]
    out += [
        (f"Test metric of the best-validation weights, mean ± sample std over seeds {meta.get('seeds')}. "
         "Gap = RHEL − BPTT; *within* = |gap| ≤ pooled std √((s_RHEL² + s_BPTT²)/2). "
         "Wall time: mean seconds per run (data loading, training, evaluations); memory: largest peak resident "
         "set of a run's process."),
        "",
        ("| task | T | metric | HRU | BPTT | RHEL | gap | within 1 std | s/run BPTT | s/run RHEL "
         "| peak MB BPTT | peak MB RHEL |"),
        "|---|---:|---|---|---:|---:|---:|:---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        within = "–" if r.comparison is None or r.comparison.within_one_std is None else (
            "yes" if r.comparison.within_one_std else "**no**")
        w = [f"{r.wall_time_s[a]:.0f}" if a in r.wall_time_s else "–" for a in ("bptt", "rhel")]
        m = [f"{r.peak_rss_mb[a]:.0f}" if a in r.peak_rss_mb else "–" for a in ("bptt", "rhel")]
        out.append(f"| {r.task} | {r.length} | {r.metric} | {r.hru} | {_cell(r.stats.get('bptt'), r.metric, r.seeds)} "
                   f"| {_cell(r.stats.get('rhel'), r.metric, r.seeds)} | {_gap(r.comparison, r.metric)} | {within} "
                   f"| {w[0]} | {w[1]} | {m[0]} | {m[1]} |")
    out += ["", "## Runs", "",
            "| run | test metric | best step | steps | stop | wall s | peak MB |",
            "|---|---:|---:|---:|---|---:|---:|"]
    for run in runs:
        if not run.get("complete"):
            out.append(f"| {run['run_id']} | incomplete | | | | | |")
            continue
        v = display_value(run["metric"], run["test_metric"])
        out.append(f"| {run['run_id']} | {_fmt(v, run['metric'])} | {run['best_step']} | {run['steps']} "
                   f"| {run['stop_reason']} | {run['wall_time_s']:.0f} | {run['peak_rss_mb']:.0f} |")
    out += ["", "## Provenance", ""]
    out += [f"- {k}: {v}" for k, v in meta.items() if k not in ("name", "description", "provenance")]
    prov = meta.get("provenance")
    if prov:
        code = prov.get("code", {})
        state = {True: " (with uncommitted changes)", False: "", None: ""}[code.get("dirty")]
        out += [f"- code: {code.get('commit') or 'unknown (no git)'}{state}",
                f"- config digest: {prov.get('config_digest')}",
                (f"- fingerprint: loss and gradient norm of the first {prov.get('fingerprint_steps')} training steps of "
                 f"the first seed of {len(prov.get('fingerprint', {}))} rows (exact, in the JSON); "
                 f"`hamsim experiment {meta.get('config')} --verify <this table's .json>` re-trains them and says "
                 "whether today's code still makes this table")]
    return "\n".join(out) + "\n"


def as_json(rows: Sequence[Row], runs: Sequence[dict[str, Any]], meta: dict[str, Any]) -> str:
    def clean(x: Any) -> Any:
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        return x

    return json.dumps(clean({"meta": meta, "table": [asdict(r) for r in rows], "runs": list(runs)}), indent=1) + "\n"
