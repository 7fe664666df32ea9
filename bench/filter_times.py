"""Training time of each graph filter of the autoencoder, relative to ``gcn``, on CIFAR-10 features.

Trains the ``represent`` autoencoder (``graphhash.nrdh.autoencoder.RepresentationLearner``) on the 50,000 x 1280
training features of ``common.cifar_features`` with each filter in turn, in one process, with the repository's
params.yaml (``graph`` and ``represent`` sections) except the number of steps (every step does the same work, so a
few hundred give the ratio). ``gcn`` runs first and again last; each filter's time is divided by the mean of those
two runs, so drift on a shared machine shows up as a gap between them rather than as a bias. With kNN graphs
(``graph.kind: knn``) the training items' neighbours are found once, as the ``neighbours`` stage finds them, and
kept in ``bench/.work/filter_times``.

The command line and the table go into docs/benchmarks.md, between the ``filter_times`` markers.

    python bench/filter_times.py [--bits 64] [--steps 400] [--preset paper] [--filters cheby lanczos spline fourier]
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time

import torch
from common import BENCHMARKS, REPO, WORK, cifar_features, write_report

from graphhash.files.features import read_features
from graphhash.nrdh.autoencoder import Graphs, RepresentationLearner
from graphhash.params import read_params_file, validate
from graphhash.params.graph import GraphParams
from graphhash.params.neighbours import NeighboursParams
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
    graph, represent, search = validate(raw, (GraphParams, RepresentParams, NeighboursParams))
    represent = represent.model_copy(update={"steps": args.steps})
    features = cifar_features()
    fs = read_features(features)
    train = torch.from_numpy(fs.features[fs.train])
    neighbours = None
    if graph.kind == "knn":
        knn = WORK / "filter_times" / f"neighbours-{graph.nodes}-{search.method}.h5"
        if not knn.is_file() or knn.stat().st_mtime < features.stat().st_mtime:
            knn.parent.mkdir(parents=True, exist_ok=True)
            find_neighbours(features, graph, knn, search)
        neighbours = training_neighbours(knn, fs, graph)
    learner = RepresentationLearner(represent.filter_options(), **represent.hyperparameters(RepresentationLearner))
    graphs = Graphs(graph.kind, graph.nodes, graph.rho)
    settings = f"{len(train)} x {train.shape[1]} training features, {args.bits} bits, {args.steps} steps; {graph}"
    print(settings, flush=True)
    seconds: dict[str, list[float]] = {}
    for name in ["gcn", *args.filters, "gcn"]:
        start = time.perf_counter()
        _, history = learner.fit(train, args.bits, name, graphs, neighbours)
        seconds.setdefault(name, []).append(time.perf_counter() - start)
        print(f"{name:>8}: {seconds[name][-1]:7.1f} s, last loss {history[-1]['loss']:.4f}", flush=True)
    gcn = sum(seconds["gcn"]) / 2
    lines = ["```", f"$ {shlex.join(['python', 'bench/filter_times.py', *sys.argv[1:]])}", settings,
             f"{'filter':>8} {'ms/step':>8} {'x gcn':>6}"]  # fmt: skip
    for name in ["gcn", *args.filters]:
        mean = sum(seconds[name]) / len(seconds[name])
        lines.append(f"{name:>8} {1000 * mean / args.steps:8.1f} {mean / gcn:6.2f}")
    lines += [f"gcn first vs last run: {seconds['gcn'][0]:.1f} s vs {seconds['gcn'][1]:.1f} s", "```"]
    print()
    write_report(BENCHMARKS, lines, "filter_times")


if __name__ == "__main__":
    main()
