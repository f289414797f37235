"""Provenance of a results table: what made it, and a fingerprint that tells whether today's code still would.

A table records the code commit it was written from (``git`` HEAD and whether the tree had changes), the digest
of its experiment config (every run's :meth:`~hamsim.experiments.config.RunSpec.identity`, so comments and
layout do not count) and a behavioural **fingerprint**: for every row (task, HRU, algorithm), the training loss
and gradient norm of the first :data:`FINGERPRINT_STEPS` steps of its first seed, as exact hex floats.  Those
steps exercise the whole path a run takes (data loading and split, initialisation, batches, dropout, forward
pass, the RHEL or BPTT gradient, the optimiser), so a code change that would change the table changes them,
and one that would not (a refactor) leaves them alone — unlike a hash of the sources.  :func:`verify`
re-trains those steps and compares bit for bit (seconds per row, not the hours of the table).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

from hamsim.experiments.config import ExperimentConfig, RunSpec, load_experiment

#: training steps per row in the fingerprint (step 1's loss: the forward pass; its gradient norm: the estimator;
#: step 2's loss: the update)
FINGERPRINT_STEPS = 2


def config_digest(config: ExperimentConfig) -> str:
    """sha256 (16 hex) of every run's identity, in table order: what the config asks for, not how it is written."""
    ident = [s.identity() for s in config.runs()]
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


def code_state(repo: str | Path | None = None) -> dict[str, Any]:
    """{"commit": HEAD or None, "dirty": uncommitted changes to tracked files (None without git)}."""
    cwd = Path(repo) if repo is not None else Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return {"commit": None, "dirty": None}
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=10)
        return {"commit": head.stdout.strip(), "dirty": bool(dirty.stdout.strip()) if dirty.returncode == 0 else None}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def row_key(spec: RunSpec) -> str:
    return f"{spec.label}--{spec.hru}--{spec.algorithm}"


def _hex(values: Any) -> list[str]:
    return [float(v).hex() for v in values]


def fingerprint(config: ExperimentConfig, out: str | Path) -> dict[str, dict[str, Any]]:
    """Row -> {"run_id", "loss", "grad_norm"} from the recorded run files in ``out`` (first seed of every row;
    rows whose run is missing or shorter than :data:`FINGERPRINT_STEPS` are left out)."""
    from hamsim.experiments.runfile import RunFileError, read_run
    from hamsim.experiments.runner import run_path

    seed = config.seeds[0]
    prints: dict[str, dict[str, Any]] = {}
    for spec in config.runs():
        if spec.seed != seed:
            continue
        try:
            rec = read_run(run_path(out, spec))
        except (RunFileError, FileNotFoundError):
            continue
        steps = rec.steps
        if len(steps["loss"]) < FINGERPRINT_STEPS:
            continue
        prints[row_key(spec)] = {"run_id": spec.run_id, "loss": _hex(steps["loss"][:FINGERPRINT_STEPS]),
                                 "grad_norm": _hex(steps["grad_norm"][:FINGERPRINT_STEPS])}
    return prints


def probe(spec: RunSpec, steps: int = FINGERPRINT_STEPS) -> dict[str, list[str]]:
    """Train the first ``steps`` steps of ``spec`` exactly as its run does (same data, seed, model and fit;
    only ``max_steps`` shortened: evaluations come after them) and return their losses and gradient norms.
    Like every run it trains on one thread (:func:`~hamsim.experiments.runner.one_thread`)."""
    from hamsim.datasets import load_task
    from hamsim.experiments.runner import one_thread
    from hamsim.hssm import HSSM
    from hamsim.hssm.train import FitConfig, StepLog, fit, hssm_config_for, seed_everything

    with one_thread():
        splits = load_task(spec.task, seed=spec.seed, **spec.options)
        seed_everything(spec.seed)
        model = HSSM(hssm_config_for(splits.info, hru=spec.hru, **spec.model))
        fit_opts = dict(spec.fit, max_steps=steps, log_every=1)
        cfg = FitConfig(algorithm=spec.algorithm, seed=spec.seed, **fit_opts)  # type: ignore[arg-type]
        logs: list[StepLog] = []
        fit(model, splits, cfg, callback=lambda rec: logs.append(rec) if isinstance(rec, StepLog) else None)
    return {"loss": _hex(r.loss for r in logs), "grad_norm": _hex(r.grad_norm for r in logs)}


def provenance(config: ExperimentConfig, out: str | Path) -> dict[str, Any]:
    """The ``provenance`` block of a table's metadata."""
    return {"code": code_state(), "config_digest": config_digest(config), "fingerprint_steps": FINGERPRINT_STEPS,
            "fingerprint": fingerprint(config, out)}


def verify(table: str | Path, config: str | Path | None = None) -> list[str]:
    """Problems that keep today's code and config from reproducing the table ``table`` (its JSON), [] if none:
    no provenance, a config whose digest changed, a row without a fingerprint, or a fingerprint that the
    re-trained steps do not reproduce bit for bit.  ``config`` defaults to the one the table names (relative
    to the repository)."""
    data = json.loads(Path(table).read_text())
    meta = data.get("meta", {})
    prov = meta.get("provenance")
    if not prov:
        return [f"{table}: no provenance (written before tables recorded one): regenerate it"]
    repo = Path(__file__).resolve().parents[2]
    cfg_path = Path(config) if config is not None else repo / meta["config"]
    cfg = load_experiment(cfg_path)
    problems = []
    if config_digest(cfg) != prov["config_digest"]:
        problems.append(f"{table}: config {cfg_path} is not what the table was made from (digest "
                        f"{config_digest(cfg)} != {prov['config_digest']}): it changed since the table was written, "
                        f"or the table was made from {meta.get('config')}")
    steps = int(prov.get("fingerprint_steps", FINGERPRINT_STEPS))
    seed = cfg.seeds[0]
    for spec in cfg.runs():
        if spec.seed != seed:
            continue
        want = prov["fingerprint"].get(row_key(spec))
        if want is None:
            problems.append(f"{table}: row {row_key(spec)} has no fingerprint")
            continue
        got = probe(spec, steps)
        if got["loss"] != want["loss"] or got["grad_norm"] != want["grad_norm"]:
            show = {k: [float.fromhex(v) for v in got[k]] for k in got}
            rec = {k: [float.fromhex(v) for v in want[k]] for k in ("loss", "grad_norm")}
            problems.append(f"{table}: row {row_key(spec)} no longer reproduces: first {steps} steps now "
                            f"{show}, recorded {rec}")
    return problems
