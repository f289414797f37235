"""float32 RHEL against float64 BPTT at the HSSM benchmark shapes (issue #19, ADR 0016).

The nonlinear HSSM of ``bench_hssm.py`` (PPG: 6 blocks, T = 49,920; EigenWorms: 2 blocks, T = 17,984; H = 64,
P = 16, batch 4, the paper's eps = 0.1 and dt = 1e-4), dropout 0 so both runs see the same network: one float32
RHEL gradient and one float64 BPTT gradient of the same weights and inputs, compared per layer and parameter
group (cosine, norm ratio).  Nothing is asserted; the worst group is printed and everything goes to JSON.

    python benchmarks/bench_hssm_precision.py [--only eigenworms|ppg] [--hru nonlinear|linear] [--out FILE]
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_info, git_state, library_versions, now_utc  # noqa: E402
from bench_hssm import CONFIGS, problem  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def compare(config: str, hru: str) -> dict[str, Any]:
    import torch

    from hamsim.hssm import HSSM

    m32, x, y, loss_fn = problem(config, hru, dropout=0.0)
    m64 = copy.deepcopy(m32).to(torch.float64)

    def grads(model: HSSM, xx: torch.Tensor, mode: str) -> dict[tuple[int, str], torch.Tensor]:
        model.set_mode(mode)  # type: ignore[arg-type]
        model.zero_grad()
        loss_fn(model(xx), y.to(xx.dtype) if y.is_floating_point() else y).backward()
        return {(i, k): p.grad.detach().flatten().double().clone()
                for i, layer in enumerate(model.hru_layers()) for k, p in layer.core_parameters().items()}

    t0 = time.perf_counter()
    g32 = grads(m32, x, "rhel")
    t1 = time.perf_counter()
    g64 = grads(m64, x.double(), "bptt")
    t2 = time.perf_counter()
    groups = []
    for (layer, name), a in g32.items():
        b = g64[(layer, name)]
        groups.append({"layer": layer, "group": name, "cosine": float(a @ b / (a.norm() * b.norm())),
                       "norm_ratio": float(a.norm() / b.norm())})
    worst = min(groups, key=lambda g: g["cosine"])
    return {"config": config, "hru": hru, "T": x.shape[1], "blocks": len(m32.hru_layers()), "eps": m32.config.eps,
            "groups": groups, "worst_cosine": worst["cosine"], "worst_group": f"{worst['layer']}:{worst['group']}",
            "max_abs_ratio_minus_1": max(abs(g["norm_ratio"] - 1) for g in groups),
            "rhel_float32_s": t1 - t0, "bptt_float64_s": t2 - t1}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=sorted(CONFIGS))
    ap.add_argument("--hru", choices=["nonlinear", "linear"], default="nonlinear")
    ap.add_argument("--out")
    args = ap.parse_args()
    results: dict[str, Any] = {"started": now_utc().isoformat(), "cpu": cpu_info(), "versions": library_versions(),
                               "git": git_state(REPO, ["hamsim", "protocols", "benchmarks"]), "runs": []}
    for config in [args.only] if args.only else sorted(CONFIGS):
        r = compare(config, args.hru)
        results["runs"].append(r)
        print(f"{config:10s} {args.hru:9s} T={r['T']:6d}: worst cosine 1 - {1 - r['worst_cosine']:.2g} "
              f"({r['worst_group']}), max |norm ratio - 1| {r['max_abs_ratio_minus_1']:.2g}  "
              f"[RHEL f32 {r['rhel_float32_s']:.1f} s, BPTT f64 {r['bptt_float64_s']:.1f} s]", flush=True)
    out = Path(args.out) if args.out else REPO / "benchmarks" / "results" / f"hssm-precision-{now_utc():%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"results: {out}")


if __name__ == "__main__":
    main()
