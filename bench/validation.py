"""Choose NRDH settings on a validation split carved from the CIFAR-10 training set (never the test queries).

Queries: 500 training images per class (5,000, drawn with seed 123); database = training set: the other
45,000 training images. Features: ``bench/cifar_features.py`` (EfficientNet-Lite0, 160 px). Each setting
runs the library's ``represent`` and ``hash`` stages (the same functions the DVC stages call) and is scored
with the project's evaluator; ITQ and cosine ranking on the same split are printed first for reference.

A setting is the repository's params.yaml (the paper's settings) with ``section.key=value`` changes. With
``--ablation`` the script walks from the paper's settings to the chosen configuration one change at a time
(the table in docs/results/cifar10.md), otherwise it scores the changes given on the command line:

    python bench/cifar10_validation.py --ablation [--bits 16 64]
    python bench/cifar10_validation.py represent.graph=knn represent.p=0.3 hash.target=rotated
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from cifar_features import CACHE, cifar_features
from common import REPO

from graphhash.baselines import ITQ
from graphhash.codes import pack, read_codes
from graphhash.evaluation import cosine_ranking
from graphhash.features import read_features, write_features
from graphhash.metrics import evaluate
from graphhash.neighbours import write_neighbours
from graphhash.nrdh import hash_codes, represent
from graphhash.params import load_params, with_filter
from graphhash.runtime import tune_allocator

VALIDATION = CACHE.with_name("cifar10-validation.h5")
NEIGHBOURS = CACHE.with_name("cifar10-validation-neighbours.h5")
MAX_NEIGHBOURS = 19  # enough for batch_nodes up to 20

# Paper -> chosen configuration, one change at a time (each row keeps the changes above it).
ABLATION = [
    ("paper (GCN, M = 10 random nodes, rho 0.4, p 0.8; 20 + 20 epochs)", []),
    ("+ ITQ-rotated targets (hash.target)", ["hash.target=rotated"]),
    ("+ kNN graphs (represent.graph)", ["represent.graph=knn", "represent.epochs=2", "represent.graphs_per_step=128"]),
    ("+ p = 0.3 (represent.p)", ["represent.p=0.3"]),
    ("+ graph at inference (hash.input)", ["hash.input=graph", "hash.input_p=0.3"]),
    ("+ 3 hash epochs (hash.epochs)", ["hash.epochs=3"]),
]
BASE = ["represent.graphs_per_step=32", "hash.epochs=20"]  # the benchmark's training length for the paper row


def validation_split() -> tuple[Path, Path]:
    """The validation features file and its neighbours (written once, beside the CIFAR-10 features)."""
    if not VALIDATION.is_file():
        fs = read_features(cifar_features())
        train_rows = np.flatnonzero(fs.train)
        rng = np.random.default_rng(123)
        queries = np.concatenate([rng.choice(train_rows[fs.labels[train_rows] == c], 500, replace=False)
                                  for c in range(len(np.unique(fs.labels)))])  # fmt: skip
        rows = np.concatenate([queries, np.setdiff1d(train_rows, queries)])
        query = np.zeros(len(rows), dtype=bool)
        query[: len(queries)] = True
        write_features(VALIDATION, [fs.features[rows]], dim=fs.features.shape[1], ids=[fs.ids[r] for r in rows],
                       labels=fs.labels[rows], masks={"query": query, "database": ~query, "train": ~query},
                       attrs={"backbone": fs.attrs["backbone"]})  # fmt: skip
    if not NEIGHBOURS.is_file():
        write_neighbours(VALIDATION, MAX_NEIGHBOURS, NEIGHBOURS)
    return VALIDATION, NEIGHBOURS


def with_changes(changes: list[str]):
    """The repository's represent and hash params with ``section.key=value`` changes (values parsed as YAML)."""
    params = load_params(REPO / "params.yaml", "represent", "hash")
    for change in changes:
        dotted, value = change.split("=", 1)
        section, key = dotted.split(".")
        if not hasattr(getattr(params, section), key):
            raise SystemExit(f"unknown param {dotted}")
        setattr(getattr(params, section), key, yaml.safe_load(value))
    return params


def score(features: Path, neighbours: Path, bits: int, changes: list[str]) -> tuple[float, float, float]:
    """mAP@1000, mAP@all and seconds of one setting's represent + hash on the validation split."""
    params = with_changes(changes)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        start = time.perf_counter()
        represent(features, bits, with_filter(params.represent, "gcn"), work / "z.h5", work / "gcnae",
                  work / "represent.csv", neighbours)  # fmt: skip
        hash_codes(features, work / "z.h5", bits, params.hash, "nrdh-gcn", work / "codes.h5", work / "nrdh",
                   work / "hash.csv", params.represent, neighbours)  # fmt: skip
        seconds = time.perf_counter() - start
        codes = read_codes(work / "codes.h5")
    result = evaluate(codes.query, codes.database, codes.query_labels, codes.database_labels, bits, map_at=(1000,))
    return result["map@1000"], result["map@all"], seconds


def references(features: Path, bits: list[int]) -> None:
    fs = read_features(features)
    cosine = cosine_ranking(features, [1000])
    print(f"cosine ranking: mAP@1000 {cosine['map@1000']:.4f}, mAP@all {cosine['map@all']:.4f}")
    for b in bits:
        itq = ITQ(b).fit(fs.features[fs.train].astype(np.float64))
        result = evaluate(pack(itq.encode(fs.features[fs.query])), pack(itq.encode(fs.features[fs.database])),
                          fs.labels[fs.query], fs.labels[fs.database], b, map_at=(1000,))  # fmt: skip
        print(f"ITQ {b} bits: mAP@1000 {result['map@1000']:.4f}, mAP@all {result['map@all']:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("changes", nargs="*", help="section.key=value changes to the paper's settings")
    parser.add_argument("--ablation", action="store_true", help="walk from the paper's settings to the chosen ones")
    parser.add_argument("--bits", type=int, nargs="+", default=[16, 64])
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    tune_allocator()
    features, neighbours = validation_split()
    print("validation split: 5,000 training images as queries, the other 45,000 as database and training set")
    references(features, args.bits)
    rows = ABLATION if args.ablation else [("given", args.changes)]
    print("| setting | " + " | ".join(f"{b} bits mAP@1000 | mAP@all | s" for b in args.bits) + " |")
    changes = list(BASE)
    for name, step in rows:
        changes += step
        cells = []
        for b in args.bits:
            map_1000, map_all, seconds = score(features, neighbours, b, changes)
            cells += [f"{map_1000:.4f}", f"{map_all:.4f}", f"{seconds:.0f}"]
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
