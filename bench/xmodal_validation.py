"""Choose the cross-modal settings (xmodal-nrdh: ``presets/crossmodal.yaml``) on validation splits of the training
pairs of two paired datasets, never their queries; score the cross-modal baselines on the same splits.

Datasets (``--dataset``):

- ``wiki``: the Wikipedia image-text pairs (``../shared/datasets/wiki``): validation queries are 20% of the 2,173
  training pairs, drawn with the seed; the other training pairs are the validation database and training set.
- ``digits``: a second paired dataset of another kind, made here: scikit-learn's 1,797 digits as two views of the
  same item, its ``image`` (the EfficientNet-Lite0 features of the pipeline's ``data/features.h5``, the embedded
  default's run) and its ``pixels`` (the 64 grey levels of the 8x8 image). The pool is that run's training items;
  20% of them are the validation queries.

Each setting runs the library's neighbours, represent and hash stages (the functions the DVC stages call) with
params.yaml's ``graph``, ``represent`` and ``hash`` sections, a ``--preset`` if given, then ``section.key=value``
changes, and scores both cross-modal directions with the project's evaluator (mAP@all; same class, Hamming ties
by database index). The baselines (``--baselines``: ``baselines.methods`` names, default cvh, cmfh and cca_itq;
one that refuses a code length is shown as "-") run on the same split through the baselines stage's function.
Every row runs once per seed (``--seeds``: the split and represent.seed, hash.seed and baselines.seed together)
and reports the mean over seeds.

    python bench/xmodal_validation.py --dataset wiki --preset crossmodal --sweep hash.dropout=0,0.2,0.5
    python bench/xmodal_validation.py --dataset digits --preset crossmodal --row "default settings="
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import REPO
from sklearn.datasets import load_digits
from validation import SEEDED, changed, settings

from graphhash.data.sources.paired import WikiSource
from graphhash.errors import GraphhashError
from graphhash.evaluation.metrics import evaluate
from graphhash.files.codes import code_file, read_codes
from graphhash.files.features import read_features, write_features
from graphhash.params import read_params_file, validate
from graphhash.params.baselines import BaselinesParams
from graphhash.pipeline.baselines import baseline_codes
from graphhash.pipeline.evaluate import direction_name, directions
from graphhash.pipeline.hash import hash_codes
from graphhash.pipeline.neighbours import find_neighbours
from graphhash.pipeline.represent import represent
from graphhash.runtime import tune_allocator

WIKI = REPO.parent / "shared" / "datasets" / "wiki"
DIGITS_FEATURES = REPO / "data" / "features.h5"
QUERY_SHARE = 0.2


def wiki_views() -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The Wiki training pairs' views and labels (the test pairs are never read)."""
    if not WIKI.is_dir():
        sys.exit(f"skipped: {WIKI} not found (the Wikipedia features live in ../shared/datasets/wiki)")
    data = WikiSource(str(WIKI)).data
    train = ~data.query
    return {modality: view[train] for modality, view in data.views.items()}, data.labels[train]


def digits_views() -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The digits run's training items as two views: their backbone features and their 64 pixels."""
    if not DIGITS_FEATURES.is_file():
        sys.exit(f"skipped: {DIGITS_FEATURES} not found; run the pipeline on the embedded default first (dvc repro)")
    fs = read_features(DIGITS_FEATURES)
    pixels = load_digits().data
    rows = np.array([int(item_id.split("/")[1]) for item_id in fs.ids])
    return {"image": fs.features[fs.train], "pixels": pixels[rows][fs.train]}, fs.labels[fs.train]


DATASETS = {"wiki": wiki_views, "digits": digits_views}


def validation_split(views: dict[str, np.ndarray], labels: np.ndarray, seed: int, work: Path) -> tuple[Path, Path]:
    """A paired features file of the pool, ``QUERY_SHARE`` of it the queries (drawn with ``seed``), and its
    neighbours file (graph.weights from params.yaml)."""
    count = len(labels)
    query = np.zeros(count, dtype=bool)
    query[np.random.default_rng(seed).choice(count, round(QUERY_SHARE * count), replace=False)] = True
    split = work / "validation.h5"
    write_features(split, [{m: np.asarray(x, dtype=np.float32) for m, x in views.items()}],
                   dims={m: x.shape[1] for m, x in views.items()}, ids=[f"item/{i:05d}" for i in range(count)],
                   labels=labels, masks={"query": query, "database": ~query, "train": ~query},
                   attrs={"backbone": "none (validation)"})  # fmt: skip
    return split, work / "neighbours.h5"


def cross_maps(codes: dict[str, object], modalities: list[str]) -> dict[str, float]:
    """mAP@all of every direction across modalities, from each modality's code set."""
    found = {}
    for query, database in directions(modalities):
        if query == database:
            continue
        q, d = codes[query], codes[database]
        found[direction_name(query, database)] = evaluate(q.query, d.database, q.query_labels, d.database_labels,
                                                          q.bits, map_at=())["map@all"]  # fmt: skip
    return found


def score(split: Path, neighbours: Path, bits: list[int], modalities: list[str], preset: str | None,
          changes: list[str]) -> tuple[dict[int, dict[str, float]], float]:  # fmt: skip
    """The cross-modal mAP@all of one setting's neighbours, represent and hash (gcn) at each code length, and the
    seconds the three stages took."""
    graph, represent_params, hash_params, extract = settings(preset, changes)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        start = time.perf_counter()
        find_neighbours(split, graph, neighbours)
        represent(split, neighbours, "gcn", bits, represent_params, graph, out=work / "z", models=work / "gcnae",
                  losses=work / "represent")  # fmt: skip
        hash_codes(split, neighbours, work / "z", "gcn", bits, hash_params, graph, codes=work / "codes",
                   models=work / "nrdh", losses=work / "hash", extract=extract)  # fmt: skip
        seconds = time.perf_counter() - start
        return {b: cross_maps({m: read_codes(code_file(work / "codes", "nrdh-gcn", b, m)) for m in modalities},
                              modalities) for b in bits}, seconds  # fmt: skip


def score_baseline(split: Path, method: str, bits: list[int], modalities: list[str],
                   changes: list[str]) -> dict[int, dict[str, float] | None]:  # fmt: skip
    """A baseline's cross-modal mAP@all at each code length (None where it refuses the length)."""
    raw = changed(read_params_file(REPO / "params.yaml"), [*changes, f"baselines.methods=[{method}]"])
    (params,) = validate(raw, (BaselinesParams,), origin="baselines")
    found: dict[int, dict[str, float] | None] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for b in bits:
            try:
                baseline_codes(split, b, params, Path(tmp))
            except GraphhashError:
                found[b] = None
                continue
            found[b] = cross_maps({m: read_codes(code_file(tmp, method, b, m)) for m in modalities}, modalities)
    return found


def table_row(name: str, by_seed: list[dict[int, dict[str, float] | None]], bits: list[int], ways: list[str]) -> str:
    cells = []
    for b in bits:
        runs = [found[b] for found in by_seed]
        cells.append("-" if any(r is None for r in runs) else
                     " / ".join(f"{np.mean([r[way] for r in runs]):.4f}" for way in ways))  # fmt: skip
    return f"| {name} | " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=sorted(DATASETS), required=True)
    parser.add_argument("--bits", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--preset", help="a preset applied over params.yaml (presets/<name>.yaml), e.g. crossmodal")
    parser.add_argument("--baselines", nargs="*", default=["cvh", "cmfh", "cca_itq"], help="baselines.methods names")
    parser.add_argument("--sweep", action="append", default=[], help="section.key=v1,v2,...: one row per value")
    parser.add_argument("--row", action="append", default=[], help="'name=section.key=v section.key=v ...'")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    tune_allocator()
    views, labels = DATASETS[args.dataset]()
    modalities = list(views)
    ways = [direction_name(q, d) for q, d in directions(modalities) if q != d]
    rows: list[tuple[str, list[str]]] = []
    for sweep in args.sweep:
        key, values = sweep.split("=", 1)
        rows += [(f"{key}={value}", [f"{key}={value}"]) for value in values.split(",")]
    for row in args.row:
        name, _, changes = row.partition("=")
        rows.append((name, changes.split()))
    rows = rows or [("settings", [])]
    print(f"{args.dataset}: {len(labels)} pairs in the pool, {QUERY_SHARE:.0%} validation queries; seeds "
          f"{args.seeds}; preset {args.preset or 'none'}; mAP@all {' / '.join(ways)}")  # fmt: skip
    print("\n| setting | " + " | ".join(f"{b} bits" for b in args.bits) + " |")
    print("| --- |" + " --- |" * len(args.bits))
    results: dict[str, list] = {}
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            work = Path(tmp) / f"seed-{seed}"
            work.mkdir()
            split, neighbours = validation_split(views, labels, seed, work)
            seeded = [f"{key}={seed}" for key in SEEDED]
            for method in args.baselines:
                results.setdefault(method, []).append(score_baseline(split, method, args.bits, modalities, seeded))
            for name, changes in rows:
                found, took = score(split, neighbours, args.bits, modalities, args.preset, [*seeded, *changes])
                results.setdefault(name, []).append(found)
                seconds[name] = seconds.get(name, 0.0) + took
    for name, by_seed in results.items():
        print(table_row(name, by_seed, args.bits, ways))
    print("\n" + ", ".join(f"{name}: {s:.0f} s" for name, s in seconds.items()) + " (neighbours, represent, hash; all "
          "lengths and seeds)")  # fmt: skip


if __name__ == "__main__":
    main()
