"""Training time of each graph filter of the autoencoder, relative to ``gcn``, on CIFAR-10 features.

Trains the ``represent`` autoencoder on the 50,000 x 1280 training features of ``bench/cifar_features.py``
with each filter in turn, in one process, with the repository's params.yaml (``represent`` section) except
the number of epochs (every epoch does the same work, so a few epochs give the ratio). ``gcn`` runs first
and again last; each filter's time is divided by the mean of those two runs, so drift on a shared machine
shows up as a gap between them rather than as a bias.

    python bench/filter_times.py [--bits 64] [--epochs 2] [--filters cheby lanczos spline fourier]
"""

from __future__ import annotations

import argparse
import time

import torch
from cifar_features import cifar_features
from common import REPO

from graphhash.autoencoder import train_autoencoder
from graphhash.features import read_features
from graphhash.params import load_params, with_filter
from graphhash.runtime import tune_allocator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bits", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--filters", nargs="+", default=["cheby", "lanczos", "spline", "fourier"])
    args = parser.parse_args()
    tune_allocator()
    fs = read_features(cifar_features())
    train = torch.from_numpy(fs.features[fs.train])
    represent = load_params(REPO / "params.yaml", "represent").represent
    represent.filters = ["gcn", *args.filters]
    represent.epochs = args.epochs
    print(f"{len(train)} x {train.shape[1]} training features, {args.bits} bits, {args.epochs} epochs; "
          f"{ {k: v for k, v in vars(represent).items() if k != 'filters'} }")  # fmt: skip
    seconds = {}
    for name in ["gcn", *args.filters, "gcn"]:
        start = time.perf_counter()
        _, history = train_autoencoder(train, args.bits, with_filter(represent, name))
        seconds.setdefault(name, []).append(time.perf_counter() - start)
        print(f"{name:>8}: {seconds[name][-1]:7.1f} s, last loss {history[-1]['loss']:.4f}", flush=True)
    gcn = sum(seconds["gcn"]) / 2
    print(f"\n{'filter':>8} {'s/epoch':>8} {'x gcn':>6}")
    for name in ["gcn", *args.filters]:
        mean = sum(seconds[name]) / len(seconds[name])
        print(f"{name:>8} {mean / args.epochs:8.1f} {mean / gcn:6.2f}")
    print(f"gcn first vs last run: {seconds['gcn'][0]:.1f} s vs {seconds['gcn'][1]:.1f} s")


if __name__ == "__main__":
    main()
