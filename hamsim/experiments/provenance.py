"""Provenance of a results table: what made it, and a fingerprint that tells whether today's code still would.

A table records the code commit it was written from (``git`` HEAD and whether the tree had changes), the digest
of its experiment config (every run's :meth:`~hamsim.experiments.config.RunSpec.identity`, so comments and
layout do not count) and a behavioural **fingerprint**: for every row (task, HRU, algorithm), the training loss
and gradient norm of the first :data:`FINGERPRINT_STEPS` steps of its first seed, as exact hex floats.  Those
steps exercise the whole path a run takes (data loading and split, initialisation, batches, dropout, forward
pass, the RHEL or BPTT gradient, the optimiser), so a code change that would change the table changes them,
and one that would not (a refactor) leaves them alone — unlike a hash of the sources.  :func:`verify`
re-trains those steps (seconds per row, not the hours of the table).

Float32 training is bit-reproducible only on the same **arithmetic platform**: torch, NumPy and Numba pick
their vector kernels by CPU (AVX2 vs AVX-512 changes the rounding of GEMMs and vectorised math).  A table
records its platform (:func:`arithmetic_platform`); on the same platform the fingerprint must match bit for
bit, on another one (or for a table that predates the record) to :data:`CROSS_PLATFORM_RTOL`, and the check
says that it was not bit for bit.  Measured between an AVX2 and an AVX-512 machine: <= 1.3e-4 relative
(the 10,000-step linear rows; 1e-7 for nonlinear ones).
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hamsim.experiments.config import ExperimentConfig, RunSpec, load_experiment

#: training steps per row in the fingerprint (step 1's loss: the forward pass; its gradient norm: the estimator;
#: step 2's loss: the update)
FINGERPRINT_STEPS = 2

#: relative agreement a fingerprint must reach when re-trained on another arithmetic platform
CROSS_PLATFORM_RTOL = 1e-3


def arithmetic_platform() -> dict[str, Any]:
    """What decides float results besides the code: the machine, the versions of torch, NumPy and Numba, and
    the CPU vector extensions each of them dispatches on (torch's CPU capability, NumPy's SIMD features
    found, LLVM's host CPU for Numba)."""
    import numba
    import numpy as np

    info: dict[str, Any] = {"machine": platform.machine(), "numpy": np.__version__, "numba": numba.__version__}
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as feats  # type: ignore[attr-defined]
    except ImportError:  # numpy 1.x
        try:
            from numpy.core._multiarray_umath import __cpu_features__ as feats  # type: ignore[attr-defined,no-redef]
        except ImportError:
            feats = {}
    info["numpy_simd"] = sorted(k for k, v in feats.items() if v)
    try:
        from numba.core import config as nb_config
        import llvmlite.binding as llvm

        info["llvm_cpu"] = nb_config.CPU_NAME or llvm.get_host_cpu_name()
    except Exception:  # noqa: BLE001 - the record is informative; never fail a table over it
        info["llvm_cpu"] = None
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_cpu"] = torch.backends.cpu.get_cpu_capability()
    except ImportError:
        info["torch"] = info["torch_cpu"] = None
    return info


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
    from hamsim.experiments.models import build
    from hamsim.experiments.runner import one_thread
    from hamsim.hssm.train import FitConfig, StepLog, fit, seed_everything

    with one_thread():
        splits = load_task(spec.task, seed=spec.seed, **spec.options)
        seed_everything(spec.seed)
        model = build(splits.info, spec.hru, **spec.model)
        fit_opts = dict(spec.fit, max_steps=steps, log_every=1)
        cfg = FitConfig(algorithm=spec.algorithm, seed=spec.seed, **fit_opts)  # type: ignore[arg-type]
        logs: list[StepLog] = []
        fit(model, splits, cfg, callback=lambda rec: logs.append(rec) if isinstance(rec, StepLog) else None)
    return {"loss": _hex(r.loss for r in logs), "grad_norm": _hex(r.grad_norm for r in logs)}


def provenance(config: ExperimentConfig, out: str | Path) -> dict[str, Any]:
    """The ``provenance`` block of a table's metadata."""
    return {"code": code_state(), "config_digest": config_digest(config), "fingerprint_steps": FINGERPRINT_STEPS,
            "platform": arithmetic_platform(), "fingerprint": fingerprint(config, out)}


@dataclass
class Verification:
    """The outcome of :func:`check`: ``problems`` (empty: the table reproduces), ``notes`` (how: e.g. to
    round-off on another platform) and whether the fingerprints were compared bit for bit."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    bit_for_bit: bool = True


def _platform_difference(recorded: dict[str, Any] | None, here: dict[str, Any]) -> str | None:
    """None on the same platform, else what differs (one line)."""
    if recorded is None:
        return "the table predates the platform record"
    keys = sorted(k for k in set(recorded) | set(here) if recorded.get(k) != here.get(k))
    if not keys:
        return None
    return "; ".join(f"{k} {recorded.get(k)!r} there, {here.get(k)!r} here" if k != "numpy_simd" else
                     f"numpy_simd differs ({len(set(recorded.get(k) or []) ^ set(here.get(k) or []))} features)"
                     for k in keys)


def verify(table: str | Path, config: str | Path | None = None) -> list[str]:
    """Problems that keep today's code and config from reproducing the table ``table`` (its JSON), [] if none
    (see :func:`check`)."""
    return check(table, config).problems


def check(table: str | Path, config: str | Path | None = None) -> Verification:
    """Re-train every row's fingerprint steps with today's code and compare: problems are no provenance, a
    config whose digest changed, a row without a fingerprint, or a fingerprint not reproduced -- bit for bit on
    the recording platform, to :data:`CROSS_PLATFORM_RTOL` on another (a note says so).  ``config`` defaults
    to the one the table names (relative to the repository)."""
    data = json.loads(Path(table).read_text())
    meta = data.get("meta", {})
    if str(meta.get("kind", "")).startswith("chlu:"):  # a CHLU experiment's table (hamsim.experiments.chlu)
        from hamsim.experiments.chlu import check as check_chlu

        return check_chlu(table, config, data)
    prov = meta.get("provenance")
    if not prov:
        return Verification([f"{table}: no provenance (written before tables recorded one): regenerate it"])
    repo = Path(__file__).resolve().parents[2]
    cfg_path = Path(config) if config is not None else repo / meta["config"]
    cfg = load_experiment(cfg_path)
    out = Verification()
    if config_digest(cfg) != prov["config_digest"]:
        out.problems.append(f"{table}: config {cfg_path} is not what the table was made from (digest "
                            f"{config_digest(cfg)} != {prov['config_digest']}): it changed since the table was "
                            f"written, or the table was made from {meta.get('config')}")
    other = _platform_difference(prov.get("platform"), arithmetic_platform())
    if other is not None:
        out.bit_for_bit = False
        out.notes.append(f"{table}: made on another arithmetic platform ({other}): fingerprints compared to "
                         f"{CROSS_PLATFORM_RTOL:g} relative, not bit for bit (float32 kernels round differently "
                         f"per CPU); on the recording platform they must match exactly")
    steps = int(prov.get("fingerprint_steps", FINGERPRINT_STEPS))
    seed = cfg.seeds[0]
    worst = 0.0
    for spec in cfg.runs():
        if spec.seed != seed:
            continue
        want = prov["fingerprint"].get(row_key(spec))
        if want is None:
            out.problems.append(f"{table}: row {row_key(spec)} has no fingerprint")
            continue
        got = probe(spec, steps)
        show = {k: [float.fromhex(v) for v in got[k]] for k in got}
        rec = {k: [float.fromhex(v) for v in want[k]] for k in ("loss", "grad_norm")}
        if got["loss"] == want["loss"] and got["grad_norm"] == want["grad_norm"]:
            continue
        rel = max((abs(a - b) / abs(b) if b else (0.0 if a == b else float("inf")))
                  for k in rec for a, b in zip(show[k], rec[k], strict=False))
        if len(show["loss"]) != len(rec["loss"]) or out.bit_for_bit or not rel <= CROSS_PLATFORM_RTOL:
            out.problems.append(f"{table}: row {row_key(spec)} no longer reproduces: first {steps} steps now "
                                f"{show}, recorded {rec}" + ("" if out.bit_for_bit else f" ({rel:.1e} relative)"))
        worst = max(worst, rel)
    if not out.bit_for_bit and not out.problems:
        out.notes.append(f"{table}: every row within {worst:.1e} relative of its recorded steps")
    return out
