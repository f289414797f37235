"""The CHLU experiments (issue #13) under ``hamsim experiment``: one config, one run, a results table.

A CHLU config is a TOML file with exactly one of the tables ``[lemniscate]`` (experiment A,
:mod:`hamsim.chlu.lemniscate`), ``[noise]`` (B, :mod:`hamsim.chlu.noise`) or ``[dreams]`` (C,
:mod:`hamsim.chlu.dreams`), and optionally ``[experiment]`` with ``name`` and ``description``.  Its protocol is not
the HSSM grid of tasks x HRU types x seeds (:mod:`hamsim.experiments.config`) but one run that trains the
experiment's models in turn; so this module gives it what the grid's runs have:

* validation before anything runs (the experiment's config dataclass refuses unknown keys and bad values);
* the output folder ``OUT`` locked while it runs; its figures and ``run.json`` (the experiment's full summary);
  ``results.md`` / ``results.json`` (and with ``table_dir`` ``<name>.md`` / ``.json``) with the provenance of
  :mod:`hamsim.experiments.provenance`: commit, config digest, arithmetic platform and a **fingerprint**: the
  training losses of the first :data:`~hamsim.experiments.provenance.FINGERPRINT_STEPS` steps of every model, as
  exact hex floats (for the CHLU the step-2 loss carries the step-1 gradient and optimiser update);
* resume: a folder whose ``results.json`` has the config's digest is complete and is not trained again; a folder
  holding another config's results is refused;
* ``--verify``: :func:`check` re-trains the fingerprint steps of every model (seconds) and compares them bit for
  bit on the recording platform, to :data:`~hamsim.experiments.provenance.CROSS_PLATFORM_RTOL` on another.

Every run trains on one thread (:func:`~hamsim.experiments.runner.one_thread`), as the grid's runs do.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hamsim.config import load_toml
from hamsim.errors import ValidationError

KINDS = ("lemniscate", "noise", "dreams")
_EXPERIMENT_KEYS = {"name", "description"}
#: settings that decide what is written, not what is computed: left out of the config digest (so a results table
#: verifies whatever they are, and a complete folder is not trained again for them)
OUTPUT_ONLY = ("session_every",)


@dataclass(frozen=True)
class ChluExperiment:
    """A validated CHLU config: its kind (the table's name), the experiment's config dataclass, name and source."""

    kind: str
    config: Any
    name: str
    description: str = ""
    source: str = ""

    @property
    def digest(self) -> str:
        """sha256 (16 hex) of the kind and every setting (comments, layout and defaults written out do not count;
        nor do the output-only settings :data:`OUTPUT_ONLY`, which change no number)."""
        settings = {k: v for k, v in asdict(self.config).items() if k not in OUTPUT_ONLY}
        ident = {"kind": self.kind, "config": _jsonable(settings)}
        return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    return x


def chlu_kind(raw: Any) -> str | None:
    """The CHLU experiment a parsed TOML table describes (its one table among :data:`KINDS`), None if none."""
    if not isinstance(raw, dict):
        return None
    kinds = [k for k in KINDS if k in raw]
    return kinds[0] if kinds else None


def is_chlu_config(path: str | Path) -> bool:
    """Whether the TOML file at ``path`` is a CHLU config (False for an unreadable one: the grid's loader says
    what is wrong with it)."""
    try:
        return chlu_kind(load_toml(path)) is not None
    except Exception:  # noqa: BLE001 - the HSSM loader gives the error message
        return False


def _module(kind: str) -> Any:
    if kind == "lemniscate":
        from hamsim.chlu import lemniscate as mod
    elif kind == "noise":
        from hamsim.chlu import noise as mod
    else:
        from hamsim.chlu import dreams as mod
    return mod


def _parser(kind: str) -> Callable[[dict[str, Any]], Any]:
    mod = _module(kind)
    return {"lemniscate": lambda d: mod.LemniscateConfig.from_mapping(d),
            "noise": lambda d: mod.NoiseConfig.from_mapping(d),
            "dreams": lambda d: mod.DreamConfig.from_mapping(d)}[kind]


def load_chlu_experiment(path: str | Path) -> ChluExperiment:
    """Read and validate a CHLU config (a ValidationError naming the file, the table and the key on a bad one)."""
    raw = load_toml(path)
    kinds = [k for k in KINDS if k in raw] if isinstance(raw, dict) else []
    where = str(path)
    if len(kinds) != 1:
        raise ValidationError("config", f"{where}: a CHLU config has exactly one of the tables "
                                        f"{['[' + k + ']' for k in KINDS]}, found {kinds or 'none'}")
    kind = kinds[0]
    unknown = set(raw) - {kind, "experiment"}
    if unknown:
        raise ValidationError("config", f"{where}: unknown table(s) {sorted(unknown)} in a CHLU config; "
                                        f"allowed: [{kind}], [experiment] (name, description)")
    exp = raw.get("experiment", {})
    if not isinstance(exp, dict) or set(exp) - _EXPERIMENT_KEYS:
        raise ValidationError("experiment", f"{where}: [experiment] of a CHLU config takes only "
                                            f"{sorted(_EXPERIMENT_KEYS)}")
    table = raw[kind]
    if not isinstance(table, dict):
        raise ValidationError(kind, f"{where}: [{kind}] must be a table")
    try:
        cfg = _parser(kind)(table)
    except ValidationError as exc:
        raise ValidationError("config", f"{where}: [{kind}] {exc}") from None
    except TypeError as exc:  # a dataclass given a value of the wrong kind
        raise ValidationError("config", f"{where}: [{kind}] invalid setting ({exc})") from None
    name = exp.get("name") or Path(path).stem
    return ChluExperiment(kind, cfg, str(name), str(exp.get("description", "")), str(path))


# ---------------------------------------------------------------------------------------------- status and run
def status(exp: ChluExperiment, out: str | Path) -> str:
    """"complete" (``out/results.json`` holds this config's digest), "missing", or "other" (another config's)."""
    res = Path(out) / "results.json"
    if not res.exists():
        return "missing"
    try:
        digest = json.loads(res.read_text())["meta"]["provenance"]["config_digest"]
    except (OSError, ValueError, KeyError, TypeError):
        return "other"
    return "complete" if digest == exp.digest else "other"


def run_chlu_experiment(exp: ChluExperiment, out: str | Path, *, table_dir: str | Path | None = None,
                        log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train and evaluate the experiment into ``out`` (figures, ``run.json``), then write its results table.
    A complete ``out`` (same digest) is not trained again, only its table rewritten; one holding another
    config's results is refused.  Returns ``{"skipped": bool, "elapsed_s", "files", "table"}``."""
    from hamsim.experiments.runner import folder_lock, one_thread

    out = Path(out)
    say = log or (lambda *_: None)
    with folder_lock(out):
        st = status(exp, out)
        if st == "other":
            raise ValidationError("out", f"{out} holds the results of another config (digest differs from "
                                         f"{exp.digest}); choose another --out or remove it")
        t0 = time.perf_counter()
        if st == "complete":
            summary = json.loads((out / "run.json").read_text())
            elapsed = json.loads((out / "results.json").read_text())["meta"].get("elapsed (s)")
            skipped = True
        else:
            with one_thread():
                summary = _module(exp.kind).run(exp.config, out, log=say)
            summary = _jsonable({k: v for k, v in summary.items() if k not in ("rollouts", "finals")})
            (out / "run.json").write_text(json.dumps(summary, indent=1))
            elapsed = round(time.perf_counter() - t0, 1)
            skipped = False
        files = write_table(exp, summary, out, table_dir=table_dir, elapsed_s=elapsed)
    return {"skipped": skipped, "elapsed_s": elapsed, "files": files, "table": table_text(exp, summary)}


def first_losses(exp: ChluExperiment, summary: dict[str, Any]) -> dict[str, list[float]]:
    """Model -> its recorded training losses of the fingerprint steps, from an experiment's summary."""
    from hamsim.experiments.provenance import FINGERPRINT_STEPS

    n = FINGERPRINT_STEPS
    if exp.kind == "lemniscate":
        return {m: r["losses"][:n] for m, r in summary["results"].items()}
    if exp.kind == "noise":
        return {m: v[:n] for m, v in summary["first_losses"].items()}
    return {"chlu_pcd": summary["losses"][:n]}


def probe(exp: ChluExperiment, steps: int) -> dict[str, list[float]]:
    """Train the first ``steps`` steps of every model exactly as the run does (one thread); model -> losses."""
    from hamsim.experiments.runner import one_thread

    with one_thread():
        return _module(exp.kind).run(exp.config, None, probe=steps)["losses"]


def table_text(exp: ChluExperiment, summary: dict[str, Any]) -> str:
    """The experiment's own table (Markdown)."""
    if exp.kind in ("lemniscate", "noise"):
        return str(summary["table"])
    return dream_table(summary)


def dream_table(summary: dict[str, Any]) -> str:
    """Experiment C per regime: mean H, mean |q|, and, when scored, the digit scores (hamsim.chlu.dream_score)."""
    regimes = {k: v for k, v in summary["regimes"].items() if not k.startswith("_")}
    scored = all("confident" in v for v in regimes.values())
    head = "| regime | mean H | mean abs q |" + (" confident (p >= 0.9) | classes | NN RMS distance | ink |"
                                              if scored else "")
    lines = [head, "|---" * (3 + (4 if scored else 0)) + "|"]
    for name, v in regimes.items():
        row = f"| {name} | {v['mean_H']:.4g} | {v['mean_abs_q']:.3f} |"
        if scored:
            row += f" {100 * v['confident']:.0f} % | {v['classes']} | {v['nn_rms']:.3f} | {v['ink']:.3f} |"
        lines.append(row)
    refs = summary["regimes"].get("_references")
    if refs:
        for name, v in refs.items():
            if isinstance(v, dict):
                lines.append(f"| *{name}* | | | {100 * v['confident']:.0f} % | {v['classes']} | {v['nn_rms']:.3f} | "
                             f"{v['ink']:.3f} |")
        lines.append(f"\nClassifier (784-256-10 MLP on real training digits): test accuracy "
                     f"{100 * refs['classifier test accuracy']:.1f} %.")
    return "\n".join(lines) + "\n"


def write_table(exp: ChluExperiment, summary: dict[str, Any], out: Path, *, table_dir: str | Path | None = None,
                elapsed_s: float | None = None) -> list[Path]:
    """``results.md`` / ``results.json`` in ``out`` (and ``<name>.md`` / ``.json`` in ``table_dir``)."""
    from hamsim import __version__
    from hamsim.experiments.provenance import FINGERPRINT_STEPS, arithmetic_platform, code_state

    prov = {"code": code_state(), "config_digest": exp.digest, "fingerprint_steps": FINGERPRINT_STEPS,
            "platform": arithmetic_platform(),
            "fingerprint": {m: {"loss": [float(v).hex() for v in ls]} for m, ls in first_losses(exp, summary).items()}}
    meta = {"name": exp.name, "kind": f"chlu:{exp.kind}", "description": exp.description, "config": exp.source,
            "settings": _jsonable(asdict(exp.config)), "elapsed (s)": elapsed_s, "cpus": os.cpu_count(),
            "machine": platform.platform(), "hamsim": __version__, "written": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "provenance": prov}
    body = table_text(exp, summary)
    md = "\n".join([f"# {exp.name} (CHLU experiment {exp.kind})", "", exp.description, "", body, "## Provenance", "",
                    f"- config: `{exp.source}`, config digest: {exp.digest}",
                    f"- code: {prov['code']['commit']} (uncommitted changes: {prov['code']['dirty']})",
                    f"- machine: {meta['machine']}, {meta['cpus']} cpus; elapsed {elapsed_s} s",
                    f"- fingerprint: first {FINGERPRINT_STEPS} training losses of every model; check with "
                    f"`hamsim experiment {exp.source} --verify <this table's .json>`", ""])
    js = json.dumps({"meta": meta, "results": summary}, indent=1)
    files = []
    targets = [(out, "results")] + ([(Path(table_dir), exp.name)] if table_dir is not None else [])
    for folder, stem in targets:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{stem}.md").write_text(md)
        (folder / f"{stem}.json").write_text(js)
        files += [folder / f"{stem}.md", folder / f"{stem}.json"]
    return files


def check(table: str | Path, config: str | Path | None, data: dict[str, Any]) -> Any:
    """``--verify`` for a CHLU table (a :class:`~hamsim.experiments.provenance.Verification`)."""
    from hamsim.experiments.provenance import (CROSS_PLATFORM_RTOL, Verification, _platform_difference,
                                               arithmetic_platform)

    meta = data.get("meta", {})
    prov = meta.get("provenance")
    if not prov:
        return Verification([f"{table}: no provenance: regenerate it"])
    repo = Path(__file__).resolve().parents[2]
    cfg_path = Path(config) if config is not None else repo / meta["config"]
    exp = load_chlu_experiment(cfg_path)
    res = Verification()
    if exp.digest != prov["config_digest"]:
        res.problems.append(f"{table}: config {cfg_path} is not what the table was made from (digest {exp.digest} "
                            f"!= {prov['config_digest']})")
    other = _platform_difference(prov.get("platform"), arithmetic_platform())
    if other is not None:
        res.bit_for_bit = False
        res.notes.append(f"{table}: made on another arithmetic platform ({other}): fingerprints compared to "
                         f"{CROSS_PLATFORM_RTOL:g} relative, not bit for bit")
    steps = int(prov.get("fingerprint_steps", 2))
    got = probe(exp, steps)
    worst = 0.0
    for model, want in prov["fingerprint"].items():
        if model not in got:
            res.problems.append(f"{table}: model {model} is no longer trained by the config")
            continue
        have = [float(v).hex() for v in got[model]]
        if have == want["loss"]:
            continue
        a, b = np.array(got[model], float), np.array([float.fromhex(v) for v in want["loss"]])
        rel = float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300))) if a.shape == b.shape else float("inf")
        worst = max(worst, rel)
        if res.bit_for_bit or not rel <= CROSS_PLATFORM_RTOL:
            res.problems.append(f"{table}: model {model} no longer reproduces: first {steps} losses now {a.tolist()}, "
                                f"recorded {b.tolist()}")
    missing = set(got) - set(prov["fingerprint"])
    for model in sorted(missing):
        res.problems.append(f"{table}: model {model} has no fingerprint")
    if not res.bit_for_bit and not res.problems:
        res.notes.append(f"{table}: every model within {worst:.1e} relative of its recorded steps")
    return res
