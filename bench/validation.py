"""Choose settings on a validation split carved from the training items of a features file, never its queries.

Validation queries: ``--queries`` per class drawn (seed 123) from the training items; the validation database
and training set are the other training items. Each setting runs the library's represent and hash stages
(the functions the DVC stages call) with params.yaml's ``graph``, ``represent`` and ``hash`` sections, a
``--preset`` if given, then ``section.key=value`` changes, and is scored with the project's evaluator (same
class, Hamming ties by database index); the baselines (``--baselines``, params.yaml's ``baselines`` section
with the changes to it) and the cosine ranking on the same split are printed first. With ``--seeds``, every
row runs once per seed (``represent.seed``, ``hash.seed`` and ``baselines.seed`` together) and reports the
mean and standard deviation. A ``--sweep`` of a ``baselines.`` key scores the baselines once per value.

    python bench/validation.py --dataset digits --sweep represent.steps=200,400,800,1600
    python bench/validation.py --dataset cifar10 --ablation         # the table in docs/results/cifar10.md
    python bench/validation.py --dataset subset --baselines bihalf --sweep baselines.bihalf.steps=1000,3000,10000

The datasets (``--dataset``; or any features file with ``--features`` and ``--queries``), each with its
validation queries per class: ``digits`` (the pipeline's ``data/features.h5`` of the embedded default, 16 per
class), ``cifar10`` (the CIFAR-10 features of ``bench/cifar_features.py``: 500 per class from the 50,000
training images) and ``subset`` (its 5,000-image subset, ``cifar_features.py --subset``: 45 per class).
"""

from __future__ import annotations

import argparse
import functools
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import yaml
from cifar_features import cifar_features, subset_features
from common import CIFAR_TAR, REPO, cifar_manifest

from graphhash.evaluation.metrics import cosine_map, evaluate
from graphhash.files.codes import code_file, pack, read_codes
from graphhash.files.features import FeatureSet, read_features, write_features
from graphhash.hashers import HASHERS
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
    write_features(split, [{modality: view[rows] for modality, view in fs.views.items()}],
                   dims={modality: view.shape[1] for modality, view in fs.views.items()}, ids=[fs.ids[r] for r in rows],
                   labels=fs.labels[rows], masks={"query": query, "database": ~query, "train": ~query},
                   attrs={"backbone": fs.attrs["backbone"], "weights": fs.attrs.get("weights", "")})  # fmt: skip
    neighbours = work / "neighbours.h5"
    find_neighbours(split, GraphParams(nodes=MAX_NEIGHBOURS + 1), neighbours)
    return split, neighbours


DATASETS = {  # name: (features file, validation queries per class)
    "digits": (lambda: REPO / "data" / "features.h5", 16),
    "cifar10": (cifar_features, 500),
    "subset": (subset_features, 45),
}
SEEDED = ("represent.seed", "hash.seed", "baselines.seed")


def changed(raw: dict, changes: list[str]) -> dict:
    """``raw`` params with the ``section.key=value`` changes applied in order (values parsed as YAML)."""
    for change in changes:
        dotted, value = change.split("=", 1)
        *path, key = dotted.split(".")
        nested: dict = {key: yaml.safe_load(value)}
        for part in reversed(path):
            nested = {part: nested}
        raw = merged(raw, nested)
    return raw


def settings(preset: str | None, changes: list[str]) -> tuple[GraphParams, RepresentParams, HashParams, ExtractParams]:
    """params.yaml's sections with the preset and the ``section.key=value`` changes."""
    raw = read_params_file(REPO / "params.yaml")
    if preset:
        raw = merged(raw, read_preset(preset, REPO / "params.yaml"))
    return validate(changed(raw, changes), (GraphParams, RepresentParams, HashParams, ExtractParams), origin="settings")


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
        found = [read_codes(code_file(work / "codes", "nrdh-gcn", b, "image")) for b in bits]
    results = [evaluate(c.query, c.database, c.query_labels, c.database_labels, c.bits, map_at=(1000,)) for c in found]
    return [(r["map@1000"], r["map@all"]) for r in results], seconds


def score_baseline(fs: FeatureSet, method: str, bits: list[int], changes: list[str]) -> tuple[list[tuple], float]:
    """mAP@1000 and mAP@all at each code length of a baseline (params.yaml's ``baselines`` section with the
    changes), fitted on the split's training items; and the seconds it took."""
    raw = changed(read_params_file(REPO / "params.yaml"), changes)
    (params,) = validate(raw, (BaselinesParams,), origin="settings")
    query, database = fs.features[fs.query], fs.features[fs.database]
    start, results = time.perf_counter(), []
    for b in bits:
        hasher = HASHERS[method](b, params.seed, **params.options(method)).fit(fs.features[fs.train].astype(np.float64))
        result = evaluate(pack(hasher.encode(query)), pack(hasher.encode(database)), fs.labels[fs.query],
                          fs.labels[fs.database], b, map_at=(1000,))  # fmt: skip
        results.append((result["map@1000"], result["map@all"]))
    return results, time.perf_counter() - start


def seeded(run: Callable[[list[str]], tuple[list[tuple], float]], changes: list[str], seeds: list[int]) -> str:
    """The table cells of one row, run once per seed: mean (± std over the seeds) of each figure, then seconds."""
    runs = [run([*changes, *(f"{key}={seed}" for key in SEEDED)]) for seed in seeds]
    figures = np.array([[value for result in found for value in result] for found, _ in runs])
    cells = [
        f"{m:.4f}" + (f" ± {d:.4f}" if len(seeds) > 1 else "")
        for m, d in zip(figures.mean(0), figures.std(0), strict=True)
    ]
    return " | ".join(cells) + f" | {np.mean([seconds for _, seconds in runs]):.0f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--features", type=Path, help="a features file written by the extract stage")
    source.add_argument("--dataset", choices=list(DATASETS), help="a named dataset, with its queries per class")
    parser.add_argument("--queries", type=int, help="validation queries per class (with --features; default 500)")
    parser.add_argument("--preset", help="a preset applied over params.yaml first, e.g. paper")
    parser.add_argument("changes", nargs="*", help="section.key=value changes, applied in order")
    parser.add_argument("--sweep", help="section.key=v1,v2,...: one row per value, after the changes")
    parser.add_argument("--ablation", action="store_true", help="walk from the paper preset to the defaults")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="run every row with each seed")
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
        choices=[name for name, cls in HASHERS.items() if not cls.crossmodal],
        help="baselines scored first on the same split (default: itq)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    tune_allocator()
    if args.dataset:
        find, queries = DATASETS[args.dataset]
        features, queries = find(), args.queries or queries
        if not features.is_file():
            sys.exit(f"{features}: not found (digits: run `dvc repro extract` first)")
    else:
        features, queries = args.features, args.queries or 500
    with tempfile.TemporaryDirectory() as tmp:
        split, neighbours = validation_split(features, queries, Path(tmp))
        fs = read_features(split)
        print(f"{features}: {int(fs.query.sum())} validation queries ({queries} per class) from the training "
              f"items, {int(fs.database.sum())} in the database and training set; seeds {args.seeds}")  # fmt: skip
        manifest = args.manifest or features.parent / "manifest.json"
        if args.dataset == "cifar10":
            manifest = Path(tmp) / "m.json"
            cifar_manifest(CIFAR_TAR, count=0).save(manifest)
        query, database = fs.features[fs.query], fs.features[fs.database]
        cosine = cosine_map(query, database, fs.labels[fs.query], fs.labels[fs.database], (1000,))
        print(f"cosine ranking: mAP@1000 {cosine['map@1000']:.4f}, mAP@all {cosine['map@all']:.4f}")
        header = "| " + " | ".join(f"{b} bits mAP@1000 | mAP@all" for b in args.bits) + " | s |"
        rule = "|" + " ---: | ---: |" * len(args.bits) + " ---: |"
        baseline_sweep = bool(args.sweep) and args.sweep.startswith("baselines.")
        print("| baseline | setting " + header + "\n| --- | --- " + rule)
        for method in args.baselines:
            rows = sweep_rows(args.sweep, args.changes) if baseline_sweep else [(" ".join(args.changes), args.changes)]
            for name, changes in rows:
                run = functools.partial(score_baseline, fs, method, args.bits)
                print(f"| {method} | {name or 'params.yaml'} | " + seeded(run, changes, args.seeds), flush=True)
        if baseline_sweep:
            return
        preset = "paper" if args.ablation else args.preset
        if args.ablation:
            rows, changes = [], []
            for name, step in ABLATION:
                changes = [*changes, *step]
                rows.append((name, changes))
        elif args.sweep:
            rows = sweep_rows(args.sweep, args.changes)
        else:
            rows = [(" ".join(args.changes) or "params.yaml", args.changes)]
        print("| setting " + header + "\n| --- " + rule)
        for name, changes in rows:
            run = functools.partial(score, split, neighbours, manifest, args.bits, preset)
            print(f"| {name} | " + seeded(run, changes, args.seeds), flush=True)


def sweep_rows(sweep: str, changes: list[str]) -> list[tuple[str, list[str]]]:
    """One (name, changes) row per value of ``section.key=v1,v2,...``, after the other changes."""
    key, values = sweep.split("=", 1)
    return [(f"{key}={v}", [*changes, f"{key}={v}"]) for v in values.split(",")]


if __name__ == "__main__":
    main()
