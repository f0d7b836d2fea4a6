"""A small training script for the CI recipe (``examples/ci/reproducibility.yml``).

Logistic regression by minibatch SGD on ``data/train.csv`` (two features, a 0/1 label),
seeded from the root that ``seedtree run`` / ``seedtree verify`` hands over; writes the
weights and the loss curve to ``out/``. Run from the repository root:

    seedtree verify -n 2 --seed 1234 --strict --junit report.xml -o examples/ci/out -- python examples/ci/train.py
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

import seedtree as st

# Not resolve(): under `seedtree verify` this file is a symlink in the try's working copy, and
# resolving it would write the outputs into the real folder instead of the try's own.
HERE = Path(os.path.abspath(__file__)).parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default=str(HERE / "data" / "train.csv"))
    parser.add_argument("--out", default=str(HERE / "out"))
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()

    root = st.seed_everything()  # the root `seedtree run` / `seedtree verify` handed over
    data = np.loadtxt(args.data, delimiter=",", skiprows=1)
    x, y = data[:, :2], data[:, 2]
    w = (root / "model" / "init").numpy().normal(scale=0.1, size=3)
    losses = []
    for epoch in range(args.epochs):
        order = (root / "data" / "shuffle" / epoch).numpy().permutation(len(x))
        for batch in np.array_split(order, len(x) // 16):
            xb = np.c_[x[batch], np.ones(len(batch))]
            p = 1 / (1 + np.exp(-xb @ w))
            w -= 0.5 * xb.T @ (p - y[batch]) / len(batch)
        p = 1 / (1 + np.exp(-np.c_[x, np.ones(len(x))] @ w))
        losses.append(float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "weights.npy", w)
    (out / "loss.txt").write_text("".join(f"{loss:.17g}\n" for loss in losses))
    st.record("model/init", root / "model" / "init")
    print(f"trained {args.epochs} epochs, final loss {losses[-1]:.4f}")


if __name__ == "__main__":
    main()
