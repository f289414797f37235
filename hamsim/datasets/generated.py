"""Synthetic long-range tasks, generated with vectorised numpy (datasets.md section 6).

Each split draws from its own seeded stream, so the validation and test sets do not change when
``n_train`` does.  Memory is N * T * C * 4 bytes per split: at length 1e5 keep N small.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from hamsim import validation
from hamsim.datasets import split
from hamsim.datasets.base import Splits
from hamsim.datasets.validate import Origin, RawSet, assemble
from hamsim.errors import ValidationError

Sample = Callable[[int, np.random.Generator], tuple[np.ndarray, np.ndarray]]


def _splits(name: str, sample: Sample, seed: int, sizes: tuple[int | None, int | None, int | None], *,
            kind: str, readout: str, output_dim: int) -> Splits:
    raws = []
    for stream, (part, n) in enumerate(zip(("train", "val", "test"), sizes, strict=True)):
        n = validation.positive_int(n, f"n_{part}", minimum=0)      # generated sets always have a size
        X, y = sample(n, split.rng(seed, stream))
        raws.append(RawSet(X, y, Origin.of(f"generated:{name} ({part})", n)))
    return assemble(*raws, name=name, kind=kind, readout=readout, real=False, source="generated",
                    output_dim=output_dim)


def adding(*, seed: int = 0, length: int = 200, n_train: int = 1000, n_val: int = 200, n_test: int = 200) -> Splits:
    """Adding problem (Hochreiter & Schmidhuber 1997; Le et al. 2015).

    Channel 0: values ~ U(0, 1); channel 1: 0 except two 1s, one at a uniform position in [0, T/2), one in
    [T/2, T).  Target: the sum of the two marked values, read at the last step (regression, MSE; always
    predicting 1 gives MSE about 0.167).
    """
    T = validation.positive_int(length, "length", minimum=2)

    def sample(n: int, g: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        X = np.zeros((n, T, 2), np.float32)
        X[:, :, 0] = g.random((n, T), dtype=np.float32)
        rows = np.arange(n)
        first, second = g.integers(0, T // 2, n), g.integers(T // 2, T, n)
        X[rows, first, 1] = 1.0
        X[rows, second, 1] = 1.0
        y = X[rows, first, 0].astype(np.float64) + X[rows, second, 0]
        return X, y[:, None]

    return _splits("adding", sample, seed, (n_train, n_val, n_test), kind="regression", readout="last", output_dim=1)


def tones(*, seed: int = 0, length: int = 1000, periods: tuple[float, ...] = (20.0, 35.0, 60.0, 100.0, 170.0),
          jitter: float = 0.05, noise: float = 1.0, n_train: int = 1000, n_val: int = 200,
          n_test: int = 200) -> Splits:
    """Tone discrimination in noise: which of K periods carries the sinusoid?

    Class k: x_t = sin(2 pi t / P + phase) + noise * N(0, 1), P = periods[k] (1 + jitter U(-1, 1)), phase
    ~ U(0, 2 pi); one channel, classification from the whole sequence (readout "mean").  Resonant units
    integrate the evidence over time, so the task suits oscillator networks at any length (up to 1e5);
    chance level is 1/K.
    """
    T = validation.positive_int(length, "length")
    P = np.array([validation.positive_scalar(p, "periods") for p in periods], dtype=np.float64)
    if P.size < 2:
        raise ValidationError("periods", "needs at least two periods (classes)")
    if not 0.0 <= jitter < 1.0:
        raise ValidationError("jitter", f"must be in [0, 1), got {jitter}")
    if not (np.isfinite(noise) and noise >= 0.0):
        raise ValidationError("noise", f"must be finite and >= 0, got {noise}")
    t = np.arange(T, dtype=np.float64)

    def sample(n: int, g: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        k = g.integers(0, P.size, n)
        period = P[k] * (1.0 + jitter * g.uniform(-1.0, 1.0, n))
        phase = g.uniform(0.0, 2.0 * np.pi, n)
        X = np.empty((n, T, 1), np.float32)
        for i in range(n):  # row by row: at T = 1e5 a float64 (n, T) temporary would be large
            X[i, :, 0] = np.sin(2.0 * np.pi * t / period[i] + phase[i]) + noise * g.standard_normal(T)
        return X, k.astype(np.int64)

    return _splits("tones", sample, seed, (n_train, n_val, n_test), kind="classification", readout="mean",
                   output_dim=int(P.size))


COPY_SYMBOLS, COPY_ALPHABET = 10, 10


def copy(*, seed: int = 0, delay: int | None = None, length: int | None = None, n_train: int = 1000,
         n_val: int = 200, n_test: int = 200) -> Splits:
    """Copy memory (Arjovsky et al. 2016), one-hot inputs over the alphabet {0..9}.

    0 is blank, 1-8 data, 9 the "go" delimiter.  Input (length delay + 20): 10 symbols uniform in 1-8,
    delay - 1 blanks, a 9, 10 blanks.  Target: delay + 10 blanks, then the 10 symbols; per-step
    classification over 9 classes (blank and 1-8; 9 is never a target), readout "all".  The memoryless
    baseline cross-entropy is 10 ln 8 / (delay + 20).  Give ``delay`` (the T of the literature, default
    100) or the total ``length`` = delay + 20, not both.
    """
    if delay is not None and length is not None:
        raise ValidationError("length", "give delay or length, not both")
    if length is not None:
        delay = validation.positive_int(length, "length", minimum=COPY_SYMBOLS + 11) - 2 * COPY_SYMBOLS
    delay = validation.positive_int(100 if delay is None else delay, "delay")
    L = delay + 2 * COPY_SYMBOLS
    eye = np.eye(COPY_ALPHABET, dtype=np.float32)

    def sample(n: int, g: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        s = np.zeros((n, L), np.int64)
        data = g.integers(1, 9, (n, COPY_SYMBOLS))
        s[:, :COPY_SYMBOLS] = data
        s[:, COPY_SYMBOLS + delay - 1] = 9
        y = np.zeros((n, L), np.int64)
        y[:, L - COPY_SYMBOLS:] = data
        return eye[s], y

    return _splits("copy", sample, seed, (n_train, n_val, n_test), kind="classification", readout="all",
                   output_dim=9)


def lemniscate_curve(theta: np.ndarray) -> np.ndarray:
    """Bernoulli lemniscate: x = cos t / (1 + sin^2 t), y = sin t cos t / (1 + sin^2 t); shape (..., 2)."""
    den = 1.0 + np.sin(theta) ** 2
    return np.stack([np.cos(theta) / den, np.sin(theta) * np.cos(theta) / den], axis=-1)


def lemniscate(*, seed: int = 0, length: int = 400, period: float = 100.0, inputs: str = "clock",
               n_train: int = 1000, n_val: int = 200, n_test: int = 200) -> Splits:
    """Figure-eight tracing: the target is the lemniscate at angle theta_t = 2 pi t / period + phi.

    ``inputs="clock"``: the input is (sin theta_t, cos theta_t) with a random phase phi ~ U(0, 2 pi) per
    sequence, so the model must turn the clock into the curve.  ``inputs="constant"``: a single input
    channel of ones and phi = 0 for every sequence, the autonomous generation task (all sequences are the
    same).  Regression, readout "all", output (x, y).
    """
    T = validation.positive_int(length, "length")
    P = validation.positive_scalar(period, "period")
    if inputs not in ("clock", "constant"):
        raise ValidationError("inputs", f"must be 'clock' or 'constant', got {inputs!r}")
    t = np.arange(T, dtype=np.float64)

    def sample(n: int, g: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        phi = g.uniform(0.0, 2 * np.pi, (n, 1)) if inputs == "clock" else np.zeros((n, 1))
        theta = 2 * np.pi * t[None, :] / P + phi
        X = (np.stack([np.sin(theta), np.cos(theta)], axis=-1) if inputs == "clock"
             else np.ones((n, T, 1)))
        return X.astype(np.float32), lemniscate_curve(theta)

    return _splits("lemniscate", sample, seed, (n_train, n_val, n_test), kind="regression", readout="all",
                   output_dim=2)


def sine(*, seed: int = 0, length: int = 400, periods: tuple[float, ...] = (25.0, 50.0, 100.0, 200.0),
         cue_steps: int | None = None, n_train: int = 1000, n_val: int = 200, n_test: int = 200) -> Splits:
    """Cued sine generation (FORCE style, Sussillo & Abbott 2009).

    Each sequence draws one of the K ``periods``; the input is a one-hot cue of that choice (K channels),
    held for the first ``cue_steps`` steps (None: throughout), and the target is y_t = sin(2 pi t / P_k).
    Dropping the cue after a warm-up tests autonomous generation.  Regression, readout "all".
    """
    T = validation.positive_int(length, "length")
    P = np.array([validation.positive_scalar(p, "periods") for p in periods], dtype=np.float64)
    if P.size == 0:
        raise ValidationError("periods", "needs at least one period")
    cue = T if cue_steps is None else validation.positive_int(cue_steps, "cue_steps", minimum=0)
    t = np.arange(T, dtype=np.float64)

    def sample(n: int, g: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        k = g.integers(0, len(P), n)
        X = np.zeros((n, T, len(P)), np.float32)
        X[:, :cue, :] = np.eye(len(P), dtype=np.float32)[k][:, None, :]
        y = np.sin(2 * np.pi * t[None, :] / P[k][:, None])
        return X, y[:, :, None]

    return _splits("sine", sample, seed, (n_train, n_val, n_test), kind="regression", readout="all",
                   output_dim=1)
