"""kNN graphs at scale: the ``neighbours`` stage's methods (``neighbours.method``: exact, ivf, hnsw) side by side.

Every item's 9 nearest training items (``graph.nodes: 10``) by cosine, as the stage finds them
(``graphhash.graphs.search.search_neighbours``), on two kinds of data:

- ``cifar10``: the benchmarks' EfficientNet-Lite0 features of CIFAR-10 (60,000 items, 50,000 training items,
  1280-d; ``common.cifar_features`` extracts them once through the pipeline; skipped with a message when
  ``../shared`` is absent);
- ``mixture``: the ``synthetic`` source's labelled mixture (``graphhash.data.sources.SyntheticSource``) in 1280-d,
  every item training: 100 classes, each a random centre plus a Gaussian spread inside its own random 16-d
  subspace plus an isotropic noise of 0.5 per dimension (features of real images lie near low-dimensional sets;
  the noise brings the mean cosine of an item's 9 nearest neighbours to about 0.67).

For each size, each method's wall time (building its index included) and its recall of the exact neighbours
on 1,000 sampled rows (the fraction of each row's exact 9 found; the exact rows by brute force on those rows
only). ``exact`` runs in full up to ``--exact-up-to`` items; beyond that its time is the sample's time scaled
by the rows (its cost is linear in the rows searched), marked ``est.``. Times are in one process, one after
the other, on the machine's threads.

The command line and a table of every measurement (a row per data set and size, a column per method) go into
docs/benchmarks.md, between the ``neighbours`` markers (``neighbours-quick`` for ``--quick``).

    python bench/neighbours.py [--sizes 20000 100000 200000] [--exact-up-to 200000] [--methods ivf hnsw] [--quick]
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time

import numpy as np
import torch
from common import BENCHMARKS, CIFAR_TAR, cifar_features, write_report

from graphhash.data.sources import SyntheticSource
from graphhash.files.features import read_features
from graphhash.graphs.knn import TrainingSet, own_rows
from graphhash.graphs.search import SEARCHES, search_neighbours

K, SAMPLE, DIM, CLASSES, NOISE = 9, 1_000, 1280, 100, 0.5


def mixture(n: int) -> np.ndarray:
    """The (n, DIM) vectors of the synthetic source with n items in CLASSES classes and noise NOISE."""
    return SyntheticSource(items=n, dimension=DIM, classes=CLASSES, noise=NOISE).rows()


def recall(found: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(np.intersect1d(a, b)) / exact.shape[1] for a, b in zip(found, exact, strict=True)]))


def measure(name: str, features: np.ndarray, train: np.ndarray, exact_up_to: int, methods: list[str]) -> dict:
    """Each method's row of the printed table; returns {method: (seconds, recall, estimated)}."""
    n_train = int(train.sum())
    sample = np.random.default_rng(1).choice(len(features), min(SAMPLE, len(features)), replace=False)
    start = time.perf_counter()
    with torch.inference_mode():
        truth = TrainingSet(features[train]).nearest(features[sample], K, own_rows(train)[sample])
    sample_seconds = time.perf_counter() - start
    print(f"\n{name}: {len(features):,} items, {n_train:,} training items, {features.shape[1]}-d", flush=True)
    print("| method | seconds | recall@9 (1,000 rows) | time / exact |", flush=True)
    print("| --- | ---: | ---: | ---: |", flush=True)
    exact_seconds, found_by = None, {}
    for method in ["exact", *(m for m in methods if m != "exact")]:
        if method == "exact" and (len(features) > exact_up_to or "exact" not in methods):
            exact_seconds = sample_seconds * len(features) / len(sample)
            print(f"| exact | {exact_seconds:,.0f} (est.) | 1.000 | 1.00 |", flush=True)
            found_by[method] = exact_seconds, 1.0, True
            continue
        start = time.perf_counter()
        found = search_neighbours(features, train, K, method)
        seconds = time.perf_counter() - start
        exact_seconds = seconds if method == "exact" else exact_seconds
        found_by[method] = seconds, recall(found.indices[sample], truth.indices), False
        print(f"| {method} | {seconds:,.1f} | {found_by[method][1]:.3f} | {seconds / exact_seconds:.2f} |",
              flush=True)  # fmt: skip
    return found_by


def table(rows: list[tuple[str, dict]], methods: list[str]) -> list[str]:
    """docs/benchmarks.md's table: a row per data set and size, exact's seconds and each method's seconds and
    recall (the word "recall" in the first row only)."""
    columns = ["exact", *(m for m in methods if m != "exact")]
    lines = [f"| data, items (training items) | {' | '.join(columns)} |", f"| --- |{' ---: |' * len(columns)}"]
    for i, (data, found_by) in enumerate(rows):
        cells = []
        for method in columns:
            seconds, found, estimated = found_by[method]
            if method == "exact":
                cells.append(f"{seconds:,.0f} s (estimated)" if estimated else f"{seconds:,.1f} s")
            else:
                cells.append(f"{seconds:,.1f} s, {'recall ' if i == 0 else ''}{found:.3f}")
        lines.append(f"| {data} | {' | '.join(cells)} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 100_000, 200_000])
    parser.add_argument("--exact-up-to", type=int, default=200_000)
    parser.add_argument("--methods", nargs="+", choices=list(SEARCHES), default=list(SEARCHES))
    parser.add_argument("--quick", action="store_true", help="a smoke test: 5,000 mixture items, no CIFAR-10")
    args = parser.parse_args()
    print(f"torch threads {torch.get_num_threads()}", flush=True)
    rows = []
    if args.quick:
        pass
    elif CIFAR_TAR.is_file():
        fs = read_features(cifar_features())
        found_by = measure("cifar10 (EfficientNet-Lite0 features)", fs.features, fs.train, args.exact_up_to,
                           args.methods)  # fmt: skip
        rows.append((f"CIFAR-10, {len(fs.features):,} ({int(fs.train.sum()):,})", found_by))
    else:
        print(f"cifar10: skipped, {CIFAR_TAR} not found (the CIFAR-10 tar lives in ../shared/datasets)", flush=True)
    for n in [5_000] if args.quick else args.sizes:
        rows.append((f"mixture, {n:,}", measure("mixture", mixture(n), np.ones(n, dtype=bool), args.exact_up_to,
                                                args.methods)))  # fmt: skip
    command = shlex.join(["python", "bench/neighbours.py", *sys.argv[1:]])
    print()
    write_report(BENCHMARKS, [f"    $ {command}", "", *table(rows, args.methods)],
                 "neighbours-quick" if args.quick else "neighbours")  # fmt: skip


if __name__ == "__main__":
    main()
