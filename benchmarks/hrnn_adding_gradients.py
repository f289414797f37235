"""Do loss gradients reach the start of a 10^4-step adding sequence?  (issue #14; docs/hrnn.md)

At initialisation (3 seeds), one batch of the adding problem at T = 10^4, loss = MSE of the last-step
prediction: the norm of dL/dx_k (the gradient with respect to the input at step k, summed over the batch)
for k = 1..T, for the Hamiltonian RNN at the heuristic's step (rho = rho_bound(T) = 0.05), the same cell at
rho = 1 (beyond the bound), and LSTM / GRU of the same parameter count.  Writes a JSON and a PNG:

    python benchmarks/hrnn_adding_gradients.py --out docs/results/measurements/hrnn_adding_gradients   # ~2 min
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from hamsim.datasets import load_task
from hamsim.hrnn import HRNN, GatedRNN, GatedRNNConfig, HRNNConfig


def profile(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    xg = x.clone().requires_grad_(True)
    loss = torch.nn.functional.mse_loss(model(xg), y)
    loss.backward()
    return xg.grad.norm(dim=(0, 2)).double().numpy()  # per step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--length", type=int, default=10_000)
    ap.add_argument("--hidden", type=int, default=16)
    ap.add_argument("--batch", type=int, default=8)
    a = ap.parse_args()
    torch.set_num_threads(1)
    T, n = a.length, a.hidden
    splits = load_task("adding", seed=0, length=T, n_train=a.batch, n_val=1, n_test=1)
    x = torch.from_numpy(splits.train.X[: a.batch]).double()
    y = torch.from_numpy(splits.train.y[: a.batch]).double()
    rows = {}
    t0 = time.perf_counter()
    for seed in (0, 1, 2):
        models = {}
        torch.manual_seed(seed)
        models["HRNN, heuristic rho"] = HRNN(HRNNConfig(2, 1, hidden=n, length=T))
        torch.manual_seed(seed)
        models["HRNN, rho = 1"] = HRNN(HRNNConfig(2, 1, hidden=n, rho=1.0))
        for cell in ("lstm", "gru"):
            torch.manual_seed(seed)
            models[cell.upper()] = GatedRNN(GatedRNNConfig(2, 1, cell=cell, match_hrnn=n))
        for name, m in models.items():
            g = profile(m.double(), x, y)
            rows.setdefault(name, []).append({"seed": seed, "grad_norm": g.tolist(),
                                              "n_params": sum(p.numel() for p in m.parameters()),
                                              "dt": getattr(m.config, "dt", None)})
            print(f"seed {seed} {name:22s} |dL/dx_1| = {g[0]:.3e}  |dL/dx_T| = {g[-1]:.3e}  ratio {g[0] / g[-1]:.3e}",
                  flush=True)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    summary = {name: {"ratio_first_to_last": [r["grad_norm"][0] / r["grad_norm"][-1] for r in rs],
                      "n_params": rs[0]["n_params"], "dt": [r["dt"] for r in rs]} for name, rs in rows.items()}
    data = {"length": T, "hidden": n, "batch": a.batch, "summary": summary,
            "wall_time_s": time.perf_counter() - t0,
            "profiles": {k: [r["grad_norm"][:: max(1, T // 500)] for r in v] for k, v in rows.items()},
            "profile_steps": list(range(1, T + 1, max(1, T // 500)))}
    out.with_suffix(".json").write_text(json.dumps(data, indent=1) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    colors = {"HRNN, heuristic rho": "C0", "HRNN, rho = 1": "C3", "LSTM": "C1", "GRU": "C2"}
    ks = data["profile_steps"]
    for name, profs in data["profiles"].items():
        for i, p in enumerate(profs):
            ax.plot(ks, np.maximum(p, 1e-300), color=colors[name], lw=1, alpha=0.8, label=name if i == 0 else None)
    ax.set_yscale("log")
    ax.set_xlabel("input step k (loss at the last step, T = %d)" % T)
    ax.set_ylabel("|dL/dx_k| (batch of %d, at initialisation)" % a.batch)
    ax.set_title("Adding problem: gradient reaching step k, 3 seeds each (exact 0, an underflow, drawn at 1e-300)", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=110)
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.png')} ({data['wall_time_s']:.0f} s)")


if __name__ == "__main__":
    main()
