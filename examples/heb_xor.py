"""HEB's wave-field self-learning machine learns XOR (issue #15; docs/echo-family.md).

    python examples/heb_xor.py [OUT_DIR] [--iterations N] [--machines I,J,...]

Trains one Kerr-cavity array per input intensity (the authors' intensities (16/25) linspace(0.4, 1.4, 40); by
default machines 8, 11, 13, 14, 16, 18, 22, 26, i.e. 1.0 to 3.1 I0 with I0 the intensity of machine 8) for N
averaged HEB iterations (default 2000: about 2 minutes on one core), records the run as ``heb_xor.h5`` (a session
file: ``hamsim session inspect heb_xor.h5``), and writes ``heb_xor.png`` (a figure like the paper's Fig. 8) and
``heb_bias_vs_m.png`` (both HEB variants against finite differences over the effective mass m).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from hamsim.heb_machine import (bias_figure, figure, gradient_check, outputs, smooth, train_xor,
                                training_amplitudes, xor_problem)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", default=".", type=Path)
    ap.add_argument("--iterations", type=int, default=2000)
    ap.add_argument("--machines", default="8,11,13,14,16,18,22,26")
    args = ap.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    idx = [int(i) for i in args.machines.split(",")]
    amp = training_amplitudes(40)[idx]

    check_problem = xor_problem(16.0 / 25.0 * np.linspace(0.7, 1.5, 6))  # the authors' gradient-check setup
    ms = np.logspace(-3, 1, 9)
    checks = [gradient_check(check_problem, ms, eta=eta) for eta in (1e-4, 1e-6)]
    print("HEB update vs finite differences, max |dC_HEB - dC_FD| / max |dC_FD| (sample [0,1], 6 intensities)")
    for c in checks:
        print(f"  eta = {c.eta:g}")
        for m, s, a, cs, ca in zip(c.m, c.simple, c.averaged, c.simple_cos, c.averaged_cos):
            print(f"    m = {m:8.1e}   simple {s:9.2e} (cos {cs:.4f})   averaged {a:9.2e} (cos {ca:.4f})")
    bias_figure(checks, out / "heb_bias_vs_m.png")

    problem = xor_problem(amp)
    costs = train_xor(problem, args.iterations, session=out / "heb_xor.h5", overwrite=True)
    rel = smooth(costs / (0.5 * amp) ** 2, 20)
    I = amp ** 2 / amp[0] ** 2
    print(f"XOR, {args.iterations} averaged HEB iterations (cost / |target|^2, moving average over 20):")
    final = outputs(problem) / (0.5 * amp)
    for j in range(amp.size):
        print(f"  machine {idx[j]:2d} ({I[j]:.1f} I0): {rel[0, j]:9.2e} -> {rel[-1, j]:9.2e} "
              f"(x{rel[0, j] / rel[-1, j]:8.1f} lower); outputs / |target| = "
              + " ".join(f"{v:+.2f}" for v in final[:, j]))
    figure(problem, costs, out / "heb_xor.png", machines=range(min(6, amp.size)))
    print(f"wrote {out / 'heb_xor.h5'}, {out / 'heb_xor.png'}, {out / 'heb_bias_vs_m.png'}")


if __name__ == "__main__":
    main()
