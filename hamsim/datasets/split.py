"""Seeded, deterministic splitting and size caps.

Every random choice draws from ``np.random.default_rng([seed, stream])`` with a fixed stream number per
purpose, so a split never depends on the size caps of another split.
"""

from __future__ import annotations

import numpy as np

from hamsim import validation
from hamsim.datasets.validate import RawSet

# Stream numbers of the random generators (one per purpose).
TRAIN, VAL, TEST, SPLIT, CAP = 0, 1, 2, 3, 4


def rng(seed: int, stream: int) -> np.random.Generator:
    seed = validation.positive_int(seed, "seed", minimum=0)
    return np.random.default_rng([seed, stream])


def cap(value: int | None, argument: str) -> int | None:
    """A size cap: None (no cap) or an integer >= 0 (0 gives an empty split, which is rejected)."""
    return None if value is None else validation.positive_int(value, argument, minimum=0)


def fraction(value: float, argument: str) -> float:
    x = float(value)
    if not 0.0 <= x < 1.0:
        raise validation.ValidationError(argument, f"must be in [0, 1), got {value!r}")
    return x


def stratified(labels: np.ndarray, held_fraction: float, generator: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (kept, held out), holding out round(held_fraction * n) samples spread over the
    classes in proportion to their sizes; a class never loses its last kept sample.

    Each sample gets the key (rank within its class in a random order + U(0, 1)) / class size, the
    last-ranked sample of each class the key inf; the smallest keys are held out.  Both parts come back
    in a seeded random order.
    """
    labels = np.asarray(labels)
    n = len(labels)
    perm = generator.permutation(n)
    _, cls, counts = np.unique(labels[perm], return_inverse=True, return_counts=True)
    rank = np.empty(n, np.int64)
    order = np.argsort(cls, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank[order] = np.arange(n) - np.repeat(starts, counts)
    key = (rank + generator.random(n)) / counts[cls]
    key[rank == counts[cls] - 1] = np.inf
    k = min(round(held_fraction * n), int(np.isfinite(key).sum()))
    chosen = np.argsort(key, kind="stable")
    held, kept = perm[chosen[:k]], perm[chosen[k:]]
    return generator.permutation(kept), generator.permutation(held)


def pooled(n: int, generator: np.random.Generator, bounds: tuple[float, float] = (0.7, 0.85)) -> tuple[np.ndarray, ...]:
    """Random 70/15/15 split of n pooled samples: permutation cut at int(0.7 n) and int(0.85 n)."""
    perm = generator.permutation(n)
    a, b = int(n * bounds[0]), int(n * bounds[1])
    return perm[:a], perm[a:b], perm[b:]


def limit(raw: RawSet, n: int | None) -> RawSet:
    """The first n samples (sets are already in seeded random order where that matters)."""
    return raw if n is None or n >= len(raw) else raw.take(np.arange(n))


def subsample(raw: RawSet, n: int | None, generator: np.random.Generator) -> RawSet:
    """n samples chosen at random, kept in their original order (for capping ordered splits)."""
    if n is None or n >= len(raw):
        return raw
    return raw.take(np.sort(generator.permutation(len(raw))[:n]))
