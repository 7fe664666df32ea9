"""Choose settings on a validation split carved from the training items of a features file, never its queries.

Validation queries: ``--queries`` per class drawn (seed 123) from the training items; the validation database
and training set are the other training items. Each setting runs the library's represent and hash stages
(the functions the DVC stages call) with params.yaml's ``graph``, ``represent`` and ``hash`` sections, a
``--preset`` if given, then ``section.key=value`` changes, and is scored with the project's evaluator (same
class, Hamming ties by database index); ITQ and the cosine ranking on the same split are printed first.

    python bench/validation.py --features data/features.h5 --queries 16 --sweep represent.steps=200,400,800,1600
    python bench/validation.py --dataset cifar10 --ablation         # the table in docs/results/cifar10.md

``--dataset cifar10`` takes the CIFAR-10 features of ``bench/cifar_features.py`` (50,000 training images:
500 validation queries per class, 45,000 in the database).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from cifar_features import cifar_features
from common import CIFAR_TAR, REPO, cifar_manifest

from graphhash.evaluation.baselines import BASELINES
from graphhash.evaluation.metrics import cosine_map, evaluate
from graphhash.files.codes import pack, read_codes
from graphhash.files.features import read_features, write_features
from graphhash.params import read_params_file, validate
from graphhash.params.baselines import BaselinesParams
from graphhash.params.extract import ExtractParams
from graphhash.params.graph import GraphParams
from graphhash.params.hash import HashParams
from graphhash.params.represent import RepresentParams
from graphhash.pipeline.hash import hash_codes
from graphhash.pipeline.neighbours import find_neighbours
from graphhash.pipeline.represent import represent
from graphhash.presets import merged, read_preset
from graphhash.runtime import tune_allocator

MAX_NEIGHBOURS = 19  # the neighbours file serves graph.nodes up to 20

# From NRDH as published (the paper preset) to the defaults, one change at a time; each row keeps those above.
ABLATION = [
    ("paper (GCN, M = 10 random nodes, rho 0.4, p 0.8; 3140 + 3900 steps)", []),
    ("+ ITQ-rotated targets (hash.target)", ["hash.target=rotated"]),
    ("+ kNN graphs, 782 steps of 128 graphs (graph.kind)",
     ["graph.kind=knn", "represent.steps=782", "represent.graphs_per_step=128"]),
    ("+ p = 0.3 (represent.gcn.p)", ["represent.gcn.p=0.3"]),
    ("+ graph at inference (hash.input)", ["hash.input=graph"]),
    ("+ 585 hash steps (hash.steps)", ["hash.steps=585"]),
    ("+ 800 steps of 32 graphs, 300 hash steps (the defaults)",
     ["represent.steps=800", "represent.graphs_per_step=32", "hash.steps=300"]),
]  # fmt: skip


def validation_split(features: Path, queries_per_class: int, work: Path) -> tuple[Path, Path]:
    """The validation features file (queries from the training items only) and its neighbours file."""
    fs = read_features(features)
    train_rows = np.flatnonzero(fs.train)
    rng = np.random.default_rng(123)
    labels = fs.labels[train_rows]
    queries = np.concatenate([rng.choice(train_rows[labels == c], queries_per_class, replace=False)
                              for c in np.unique(labels)])  # fmt: skip
    rows = np.concatenate([queries, np.setdiff1d(train_rows, queries)])
    query = np.zeros(len(rows), dtype=bool)
    query[: len(queries)] = True
    split = work / "validation.h5"
    write_features(split, [fs.features[rows]], dim=fs.features.shape[1], ids=[fs.ids[r] for r in rows],
                   labels=fs.labels[rows], masks={"query": query, "database": ~query, "train": ~query},
                   attrs={"backbone": fs.attrs["backbone"], "weights": fs.attrs.get("weights", "")})  # fmt: skip
    neighbours = work / "neighbours.h5"
    find_neighbours(split, GraphParams(nodes=MAX_NEIGHBOURS + 1), neighbours)
    return split, neighbours


def settings(preset: str | None, changes: list[str]) -> tuple[GraphParams, RepresentParams, HashParams, ExtractParams]:
    """params.yaml's sections with the preset and the ``section.key=value`` changes (values parsed as YAML)."""
    raw = read_params_file(REPO / "params.yaml")
    if preset:
        raw = merged(raw, read_preset(preset, REPO / "params.yaml"))
    for change in changes:
        dotted, value = change.split("=", 1)
        *path, key = dotted.split(".")
        nested: dict = {key: yaml.safe_load(value)}
        for part in reversed(path):
            nested = {part: nested}
        raw = merged(raw, nested)
    return validate(raw, (GraphParams, RepresentParams, HashParams, ExtractParams), origin="settings")


def score(
    split: Path, neighbours: Path, manifest: Path, bits: list[int], preset: str | None, changes: list[str]
) -> tuple[list[tuple[float, float]], float]:
    """mAP@1000 and mAP@all at each code length of one setting's represent + hash (gcn) on the validation
    split, and the seconds both stages took for all lengths (one run of each, as the DVC stages do)."""
    graph, represent_params, hash_params, extract = settings(preset, changes)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        start = time.perf_counter()
        represent(split, neighbours, "gcn", bits, represent_params, graph, out=work / "z", models=work / "gcnae",
                  losses=work / "represent")  # fmt: skip
        hash_codes(split, neighbours, work / "z", "gcn", bits, hash_params, graph, codes=work / "codes",
                   models=work / "nrdh", losses=work / "hash", extract=extract, manifest=manifest)  # fmt: skip
        seconds = time.perf_counter() - start
        found = [read_codes(work / "codes" / f"nrdh-gcn-{b}.h5") for b in bits]
    results = [evaluate(c.query, c.database, c.query_labels, c.database_labels, c.bits, map_at=(1000,)) for c in found]
    return [(r["map@1000"], r["map@all"]) for r in results], seconds


def references(split: Path, bits: list[int], methods: list[str]) -> None:
    """The cosine ranking and the baselines ``methods`` (params.yaml's hyperparameters) on the split."""
    fs = read_features(split)
    query, database = fs.features[fs.query], fs.features[fs.database]
    cosine = cosine_map(query, database, fs.labels[fs.query], fs.labels[fs.database], (1000,))
    print(f"cosine ranking: mAP@1000 {cosine['map@1000']:.4f}, mAP@all {cosine['map@all']:.4f}")
    (params,) = validate(read_params_file(REPO / "params.yaml"), (BaselinesParams,), origin="params.yaml")
    for method in methods:
        for b in bits:
            start = time.perf_counter()
            hasher = BASELINES[method](b, params.seed, **params.options(method)).fit(
                fs.features[fs.train].astype(np.float64)
            )
            result = evaluate(pack(hasher.encode(query)), pack(hasher.encode(database)), fs.labels[fs.query],
                              fs.labels[fs.database], b, map_at=(1000,))  # fmt: skip
            print(f"{method} {b} bits: mAP@1000 {result['map@1000']:.4f}, mAP@all {result['map@all']:.4f}, "
                  f"{time.perf_counter() - start:.0f} s", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--features", type=Path, help="a features file written by the extract stage")
    source.add_argument("--dataset", choices=["cifar10"], help="the cached CIFAR-10 features")
    parser.add_argument("--queries", type=int, default=500, help="validation queries per class")
    parser.add_argument("--preset", help="a preset applied over params.yaml first, e.g. paper")
    parser.add_argument("changes", nargs="*", help="section.key=value changes, applied in order")
    parser.add_argument("--sweep", help="section.key=v1,v2,...: one row per value, after the changes")
    parser.add_argument("--ablation", action="store_true", help="walk from the paper preset to the defaults")
    parser.add_argument(
        "--manifest",
        type=Path,
        help="the features' manifest (hash.network: cnn reads the images); default: manifest.json beside --features",
    )
    parser.add_argument("--bits", type=int, nargs="+", default=[16, 64])
    parser.add_argument(
        "--baselines",
        nargs="*",
        default=["itq"],
        choices=list(BASELINES),
        help="baselines scored first on the same split (default: itq)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    tune_allocator()
    features = cifar_features() if args.dataset else args.features
    with tempfile.TemporaryDirectory() as tmp:
        split, neighbours = validation_split(features, args.queries, Path(tmp))
        fs = read_features(split)
        print(f"{features}: {int(fs.query.sum())} validation queries ({args.queries} per class) from the training "
              f"items, {int(fs.database.sum())} in the database and training set")  # fmt: skip
        manifest = args.manifest or (args.features.parent / "manifest.json" if args.features else Path(tmp) / "m.json")
        if args.dataset:
            cifar_manifest(CIFAR_TAR, count=0).save(manifest)
        references(split, args.bits, args.baselines)
        if args.ablation:
            rows, preset, changes = [], "paper", []
            for name, step in ABLATION:
                changes = [*changes, *step]
                rows.append((name, changes))
        elif args.sweep:
            key, values = args.sweep.split("=", 1)
            rows, preset = [(f"{key}={v}", [*args.changes, f"{key}={v}"]) for v in values.split(",")], args.preset
        else:
            rows, preset = [(" ".join(args.changes) or "params.yaml", args.changes)], args.preset
        print("| setting | " + " | ".join(f"{b} bits mAP@1000 | mAP@all" for b in args.bits) + " | s |")
        print("| --- |" + " ---: | ---: |" * len(args.bits) + " ---: |")
        for name, changes in rows:
            results, seconds = score(split, neighbours, manifest, args.bits, preset, changes)
            cells = [f"{value:.4f}" for result in results for value in result]
            print(f"| {name} | " + " | ".join(cells) + f" | {seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()
