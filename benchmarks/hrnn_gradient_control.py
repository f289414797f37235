"""Gradient control of the Hamiltonian RNN, measured (issue #14; docs/hrnn.md).

Spectrum of the hidden-state Jacobian dPhi_K/dPhi_0 by exact tangent propagation (hamsim.tangent) for
K = 10 .. 10^5, as a function of rho = dt * omega_max, without input and with i.i.d. N(0, 1) inputs every
step; the heuristic's rho_bound(T) for T = 10^3, 10^4, 10^5 is marked.  Writes a JSON and a PNG:

    python benchmarks/hrnn_gradient_control.py --out docs/results/measurements/hrnn_gradient_control    # ~10 min, 2 cores
    python benchmarks/hrnn_gradient_control.py --quick --out /tmp/gc                       # K <= 10^4, seconds
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from hamsim.hamiltonians.hrnn import RHO_CAP, RHO_LENGTH, HamiltonianRNN, omega_max, rho_bound
from hamsim.tangent import jacobian_spectrum

RHOS = (0.01, 0.03, 0.1, 0.3, 1.0, 1.5)


def measure(n: int, d: int, seed: int, kmax: int, rhos: tuple[float, ...]) -> dict:
    h = HamiltonianRNN.random(n, d, seed=seed)
    w = omega_max(h)
    ks = sorted({int(k) for k in np.unique(np.round(np.logspace(1, np.log10(kmax), 13)))})
    u = np.random.default_rng(seed + 1000).normal(size=(kmax, d))
    rows = []
    for drive in ("none", "iid"):
        for rho in rhos:
            t0 = time.perf_counter()
            s = jacobian_spectrum(h, rho / w, ks, u=None if drive == "none" else u, phi0=np.full(n, 0.5))
            rows.append({"drive": drive, "rho": rho, "dt": rho / w, "K": s.K.tolist(),
                         "log10_sigma_max": (s.log_sigma_max / np.log(10)).tolist(),
                         "sum_log_sigma": s.sum_log_sigma.tolist(), "pair_defect": s.pair_defect.tolist(),
                         "rescaled": s.rescaled.tolist(), "seconds": time.perf_counter() - t0})
            print(f"{drive:4s} rho={rho:<5} log10 sigma_max at K={ks[-1]}: {rows[-1]['log10_sigma_max'][-1]:8.2f} "
                  f"({rows[-1]['seconds']:.0f} s)", flush=True)
    return {"n": n, "input_dim": d, "seed": seed, "omega_max": w, "rho_cap": RHO_CAP, "rho_length": RHO_LENGTH,
            "rho_bound": {str(T): rho_bound(T) for T in (1000, 10_000, 100_000)}, "rows": rows}


def plot(data: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    cmap = plt.get_cmap("viridis")
    rhos = sorted({r["rho"] for r in data["rows"]})
    for ax, drive, title in ((axes[0], "none", "no input"), (axes[1], "iid", "i.i.d. N(0,1) input every step")):
        for i, rho in enumerate(rhos):
            r = next(x for x in data["rows"] if x["drive"] == drive and x["rho"] == rho)
            ax.plot(r["K"], r["log10_sigma_max"], "o-", ms=3, color=cmap(i / max(len(rhos) - 1, 1)),
                    label=f"rho = {rho}")
        K = np.array(r["K"], float)
        ax.plot(K, np.log10(K / K[0]), "k:", lw=1, label="∝ K (linear growth)")
        ax.set_xscale("log")
        ax.set_xlabel("steps K")
        ax.set_ylabel("log10 sigma_max(dPhi_K/dPhi_0)   (sigma_min = 1/sigma_max)")
        ax.set_title(f"HRNN leapfrog, n={data['n']}: {title}")
        ax.set_ylim(-0.5, min(60, ax.get_ylim()[1]))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="upper left")
    ax = axes[2]
    for drive, style in (("none", "s--"), ("iid", "o-")):
        rs = [x for x in data["rows"] if x["drive"] == drive]
        rho = [x["rho"] for x in rs]
        kmax = rs[0]["K"][-1]
        i3 = rs[0]["K"].index(min(rs[0]["K"], key=lambda k: abs(k - kmax / 10)))
        ratio = [x["log10_sigma_max"][-1] - x["log10_sigma_max"][i3] for x in rs]
        ax.plot(rho, ratio, style, label=f"{drive}: log10 sigma_max(K={kmax}) / sigma_max(K={rs[0]['K'][i3]})")
    ax.axhline(np.log10(20), color="gray", lw=1, ls=":", label="ratio 20 (acceptance)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    lo = ax.get_ylim()[0]
    for T, b in data["rho_bound"].items():
        ax.axvline(b, color="red", lw=1, alpha=0.6)
        ax.text(b, lo * 1.3, f" heuristic\n T={T}", color="red", fontsize=7)
    ax.set_xlabel("rho = dt * omega_max (the gradient-controlling hyperparameter)")
    ax.set_ylabel("log10 growth over the last decade of K")
    ax.set_title("polynomial (<= 1 per decade) vs exponential")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="path stem: writes <out>.json and <out>.png")
    ap.add_argument("--quick", action="store_true", help="K up to 10^4, four rho values")
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    kmax = 10_000 if a.quick else 100_000
    rhos = (0.02, 0.1, 0.5, 1.5) if a.quick else RHOS
    t0 = time.perf_counter()
    data = measure(a.n, 2, a.seed, kmax, rhos)
    data["wall_time_s"] = time.perf_counter() - t0
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(data, indent=1) + "\n")
    plot(data, out.with_suffix(".png"))
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.png')} ({data['wall_time_s']:.0f} s)")


if __name__ == "__main__":
    main()
