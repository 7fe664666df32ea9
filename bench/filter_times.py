"""Training time of each graph filter of the autoencoder, relative to ``gcn``, on CIFAR-10 features.

Trains the ``represent`` autoencoder on the 50,000 x 1280 training features of ``bench/cifar_features.py``
with each filter in turn, in one process, with the repository's params.yaml (``graph`` and ``represent``
sections) except the number of steps (every step does the same work, so a few hundred give the ratio).
``gcn`` runs first and again last; each filter's time is divided by the mean of those two runs, so drift on
a shared machine shows up as a gap between them rather than as a bias.

    python bench/filter_times.py [--bits 64] [--steps 400] [--preset paper] [--filters cheby lanczos spline fourier]
"""

from __future__ import annotations

import argparse
import time

import torch
from cifar_features import cifar_features
from common import REPO

from graphhash.files.features import read_features
from graphhash.nrdh.autoencoder import train_autoencoder
from graphhash.params import read_params_file, validate
from graphhash.params.graph import GraphParams
from graphhash.params.represent import RepresentParams
from graphhash.pipeline.neighbours import find_neighbours
from graphhash.pipeline.represent import training_neighbours
from graphhash.presets import merged, read_preset
from graphhash.runtime import tune_allocator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bits", type=int, default=64)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--filters", nargs="+", default=["cheby", "lanczos", "spline", "fourier"])
    parser.add_argument("--preset", help="a preset applied over params.yaml, e.g. paper")
    args = parser.parse_args()
    tune_allocator()
    raw = read_params_file(REPO / "params.yaml")
    if args.preset:
        raw = merged(raw, read_preset(args.preset, REPO / "params.yaml"))
    graph, represent = validate(raw, (GraphParams, RepresentParams))
    represent = represent.model_copy(update={"steps": args.steps})
    features = cifar_features()
    fs = read_features(features)
    train = torch.from_numpy(fs.features[fs.train])
    neighbours = None
    if graph.kind == "knn":
        knn = features.with_name(f"{features.stem}-neighbours-{graph.nodes}.h5")
        if not knn.is_file():
            find_neighbours(features, graph, knn)
        neighbours = training_neighbours(knn, fs, graph)
    print(f"{len(train)} x {train.shape[1]} training features, {args.bits} bits, {args.steps} steps; {graph}")
    seconds: dict[str, list[float]] = {}
    for name in ["gcn", *args.filters, "gcn"]:
        start = time.perf_counter()
        _, history = train_autoencoder(train, args.bits, name, represent, graph, neighbours)
        seconds.setdefault(name, []).append(time.perf_counter() - start)
        print(f"{name:>8}: {seconds[name][-1]:7.1f} s, last loss {history[-1]['loss']:.4f}", flush=True)
    gcn = sum(seconds["gcn"]) / 2
    print(f"\n{'filter':>8} {'ms/step':>8} {'x gcn':>6}")
    for name in ["gcn", *args.filters]:
        mean = sum(seconds[name]) / len(seconds[name])
        print(f"{name:>8} {1000 * mean / args.steps:8.1f} {mean / gcn:6.2f}")
    print(f"gcn first vs last run: {seconds['gcn'][0]:.1f} s vs {seconds['gcn'][1]:.1f} s")


if __name__ == "__main__":
    main()
