"""Multi-label data through the whole pipeline: MIRFlickr-shaped tags (one modality) with several labels per item,
from prepare to evaluate, scored with relevance = a shared label, against a brute force."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from graphhash.files.codes import code_file, read_codes, unpack
from graphhash.files.features import read_features
from graphhash.files.manifest import Manifest
from graphhash.params.baselines import BaselinesParams
from graphhash.params.codes import CodesParams
from graphhash.params.evaluate import EvaluateParams
from graphhash.params.extract import ExtractParams
from graphhash.params.graph import GraphParams
from graphhash.params.hash import HashParams
from graphhash.params.prepare import PrepareParams
from graphhash.params.represent import RepresentParams
from graphhash.pipeline.baselines import baseline_codes
from graphhash.pipeline.evaluate import evaluate_codes
from graphhash.pipeline.extract import extract
from graphhash.pipeline.hash import hash_codes
from graphhash.pipeline.neighbours import find_neighbours
from graphhash.pipeline.prepare import prepare
from graphhash.pipeline.represent import represent

ITEMS, TAGS, LABELS = 150, 30, 5


def write_tags(folder: Path) -> np.ndarray:
    """MIRFlickr's two files: each item has 1-3 of 5 labels, and tags drawn mostly from its labels' tag groups."""
    rng = np.random.default_rng(0)
    labels = rng.random((ITEMS, LABELS)) < 0.3
    labels[~labels.any(axis=1), rng.integers(0, LABELS)] = True
    groups = np.arange(TAGS) % LABELS  # tag t belongs to label t mod 5
    tags = (rng.random((ITEMS, TAGS)) < 0.05) | (labels[:, groups] & (rng.random((ITEMS, TAGS)) < 0.6))
    tags[~tags.any(axis=1), 0] = True
    folder.mkdir(parents=True)
    scipy.io.savemat(folder / "mirflickr25k-yall.mat", {"YAll": tags.astype(np.uint8)})
    scipy.io.savemat(folder / "mirflickr25k-lall.mat", {"LAll": labels.astype(np.uint8)})
    return labels


def brute_force_map(query: np.ndarray, database: np.ndarray, query_labels, database_labels) -> float:
    """mAP@all: Hamming ranking with ties by database index; relevant = at least one shared label (sets)."""
    aps = []
    for code, labels in zip(query, query_labels, strict=True):
        distance = (code != database).sum(axis=1)
        order = np.lexsort((np.arange(len(database)), distance))
        wanted = set(np.flatnonzero(labels))
        relevant = np.array([bool(wanted & set(np.flatnonzero(database_labels[j]))) for j in order])
        hits = np.cumsum(relevant)
        aps.append(np.sum(hits[relevant] / (np.flatnonzero(relevant) + 1)) / hits[-1] if hits[-1] else 0.0)
    return float(np.mean(aps))


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """prepare (30 queries drawn in all), extract, neighbours, represent, hash and baselines, then evaluate."""
    work = tmp_path_factory.mktemp("tags")
    write_tags(work / "tags")
    manifest = prepare(PrepareParams(source="mirflickr_tags", path=str(work / "tags"), split="random", query_size=30))
    manifest.save(work / "manifest.json")
    extract(Manifest.load(work / "manifest.json"), ExtractParams(), work / "features.h5")
    graph = GraphParams(nodes=6)
    find_neighbours(work / "features.h5", graph, work / "neighbours.h5")
    represent(work / "features.h5", work / "neighbours.h5", "gcn", [16], RepresentParams(steps=100), graph,
              out=work / "z", models=work / "ae", losses=work / "rl")  # fmt: skip
    hash_codes(work / "features.h5", work / "neighbours.h5", work / "z", "gcn", [16], HashParams(steps=100), graph,
               codes=work / "codes" / "nrdh-gcn", models=work / "models", losses=work / "hl")  # fmt: skip
    baseline_codes(work / "features.h5", 16, BaselinesParams(methods=["lsh", "itq"]), work / "codes" / "baselines")
    evaluate_codes(work / "codes", work / "features.h5", work / "manifest.json", EvaluateParams(map_at=[10]),
                   CodesParams(bits=[16]), BaselinesParams(methods=["lsh", "itq"]), metrics_path=work / "metrics.json",
                   results_path=work / "results.md", curves=work / "curves", figures=work / "figures")  # fmt: skip
    return work


def test_labels_stay_label_matrices_from_the_manifest_to_the_code_files(run):
    fs = read_features(run / "features.h5")
    assert fs.modalities == ["tags"] and fs.labels.dtype == bool and fs.labels.shape == (ITEMS, LABELS)
    assert int(fs.query.sum()) == 30 and not (fs.query & fs.database).any()
    codes = read_codes(code_file(run / "codes" / "nrdh-gcn", "nrdh-gcn", 16, "tags"))
    assert codes.query_labels.shape == (30, LABELS) and codes.database_labels.dtype == bool
    np.testing.assert_array_equal(codes.database_labels, fs.labels[fs.database])


def test_multi_label_metrics_are_a_shared_label_by_brute_force(run):
    """Every method's mAP@all equals the brute force with relevance = a shared label; NRDH beats chance clearly."""
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics) == {"nrdh-gcn", "lsh", "itq", "cosine"} and "map@all" in metrics["nrdh-gcn"]["16"]
    for method, folder in (("nrdh-gcn", "nrdh-gcn"), ("itq", "baselines"), ("lsh", "baselines")):
        codes = read_codes(code_file(run / "codes" / folder, method, 16, "tags"))
        expected = brute_force_map(unpack(codes.query, 16), unpack(codes.database, 16), codes.query_labels,
                                   codes.database_labels)  # fmt: skip
        assert metrics[method]["16"]["map@all"] == pytest.approx(expected, rel=1e-9), method
    fs = read_features(run / "features.h5")
    rng = np.random.default_rng(1)
    chance = brute_force_map(rng.random((30, 16)) < 0.5, rng.random((120, 16)) < 0.5, fs.labels[fs.query],
                             fs.labels[fs.database])  # fmt: skip
    assert metrics["nrdh-gcn"]["16"]["map@all"] > chance + 0.1
