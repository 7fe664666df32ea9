"""The evaluate stage's library: cosine ranking against brute force, and the files it writes."""

from __future__ import annotations

import csv
import json
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from graphhash.codes import CodeSet, pack, write_codes
from graphhash.errors import GraphhashError
from graphhash.evaluation import code_files, cosine_ranking, evaluate_codes
from graphhash.features import write_features
from graphhash.figures import THUMB
from graphhash.manifest import Manifest
from graphhash.split import Split

DIGIT_IDS = [f"digits/{i:04d}" for i in range(150)]  # real items, so the retrieval figures can show them


@pytest.fixture
def features(tmp_path):
    """30 queries and 120 database items in 4 classes; class means apart, so rankings are informative."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 150)
    x = (rng.normal(size=(150, 6)) + 2.0 * np.eye(6)[labels]).astype(np.float32)
    query = np.zeros(150, dtype=bool)
    query[:30] = True
    path = tmp_path / "features.h5"
    write_features(path, [x], dim=6, ids=DIGIT_IDS, labels=labels,
                   masks={"query": query, "database": ~query, "train": ~query}, attrs={})  # fmt: skip
    return path, x, labels, query


def brute_force_map(scores: np.ndarray, relevant: np.ndarray, k: int) -> float:
    """Rank by descending score, ties by index; AP@k = sum of P@i at hits / hits within k; 0 if none."""
    aps = []
    for s, rel in zip(scores, relevant, strict=True):
        order = sorted(range(len(s)), key=lambda j: (-s[j], j))[:k]
        hits, total = 0, 0.0
        for i, j in enumerate(order, start=1):
            if rel[j]:
                hits += 1
                total += hits / i
        aps.append(total / hits if hits else 0.0)
    return float(np.mean(aps))


def test_cosine_ranking_matches_brute_force(features):
    path, x, labels, query = features
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    scores = unit[query] @ unit[~query].T
    relevant = labels[query][:, None] == labels[~query][None, :]
    result = cosine_ranking(path, [10, 500], block_size=7)
    assert result["map@all"] == pytest.approx(brute_force_map(scores, relevant, 120), rel=1e-5)
    assert result["map@10"] == pytest.approx(brute_force_map(scores, relevant, 10), rel=1e-5)
    assert result["map@500"] == pytest.approx(result["map@all"], rel=1e-12)  # K beyond the database


def test_cosine_ranking_breaks_ties_by_database_index(tmp_path):
    """Scaled one-hot features: every similarity is exactly 0 or 1, so the ranking is decided by the tie rule."""
    rng = np.random.default_rng(2)
    n, query_n = 200, 20
    direction, labels = rng.integers(0, 3, n), rng.integers(0, 4, n)  # direction shares little with class
    x = (np.eye(3)[direction] * rng.integers(1, 5, (n, 1))).astype(np.float32)
    query = np.zeros(n, dtype=bool)
    query[:query_n] = True
    path = tmp_path / "features.h5"
    write_features(path, [x], dim=3, ids=[f"x/{i}" for i in range(n)], labels=labels,
                   masks={"query": query, "database": ~query, "train": ~query}, attrs={})  # fmt: skip
    scores = (direction[query][:, None] == direction[~query][None, :]).astype(float)
    relevant = labels[query][:, None] == labels[~query][None, :]
    result = cosine_ranking(path, [15], block_size=6)
    assert result["map@15"] == pytest.approx(brute_force_map(scores, relevant, 15), rel=1e-9)
    assert result["map@all"] == pytest.approx(brute_force_map(scores, relevant, n - query_n), rel=1e-9)


def write_manifest(path, source: str, source_path: str, labels: np.ndarray, query: np.ndarray):
    Manifest(source=source, path=source_path, classes=[str(c) for c in range(4)], ids=DIGIT_IDS, labels=labels,
             split=Split(query, ~query, ~query), content_sha256="-").save(path)  # fmt: skip
    return path


@pytest.fixture
def codes_dir(features, tmp_path):
    _, _, labels, query = features
    ids = np.array(DIGIT_IDS)
    rng = np.random.default_rng(1)
    for method, bits in (("nrdh", 8), ("itq", 8), ("itq", 16)):
        codes = rng.random((150, bits)) < 0.5
        write_codes(tmp_path / "codes" / f"{method}-{bits}.h5", CodeSet(
            method, bits, pack(codes[query]), pack(codes[~query]), list(ids[query]), list(ids[~query]),
            labels[query], labels[~query]))  # fmt: skip
    return tmp_path / "codes"


def test_evaluate_codes_writes_metrics_tables_and_curves(features, codes_dir, tmp_path):
    path, _, labels, query = features
    out = tmp_path / "metrics"
    params = SimpleNamespace(map_at=[10], radius=2, figure_queries=3)
    manifest = write_manifest(tmp_path / "manifest.json", "digits", "", labels, query)
    evaluate_codes(sorted(codes_dir.glob("*.h5")), path, manifest, params, out)

    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"nrdh", "itq", "cosine"} and set(metrics["itq"]) == {"8", "16"}
    assert set(metrics["nrdh"]["8"]) == {"map@all", "map@10", "p@r2", "r@r2", "f1@r2"}
    assert all(isinstance(v, float) for m in ("nrdh", "itq") for b in metrics[m].values() for v in b.values())
    table = (out / "results.md").read_text()
    assert "| nrdh | " in table and "| itq | " in table and "cosine" in table
    with open(out / "plots" / "pr_rank" / "8.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["recall", "itq", "nrdh"] and len(rows) == 20
    with open(out / "plots" / "precision_radius" / "16.csv") as f:
        assert list(next(csv.DictReader(f))) == ["radius", "itq"]
    figures = sorted(p.name for p in (out / "retrieval").iterdir())
    assert figures == ["itq-16.png", "itq-8.png", "nrdh-8.png"]
    assert Image.open(out / "retrieval" / "itq-8.png").size[1] > 3 * THUMB  # three query rows


def test_no_figures_without_images_or_when_turned_off(features, codes_dir, tmp_path):
    """Feature-only sources (npy) and figure_queries = 0 leave the declared folder empty."""
    path, _, labels, query = features
    for name, source, count in (("npy", "npy", 3), ("off", "digits", 0)):
        manifest = write_manifest(tmp_path / f"{name}.json", source, str(tmp_path), labels, query)
        out = tmp_path / name
        params = SimpleNamespace(map_at=[10], radius=2, figure_queries=count)
        evaluate_codes(sorted(codes_dir.glob("*.h5")), path, manifest, params, out)
        assert (out / "metrics.json").is_file()
        assert list((out / "retrieval").iterdir()) == []


def test_code_files_come_from_the_params_not_from_what_lies_in_the_folder(codes_dir):
    """A stale file (a filter or length since removed) is not evaluated; a missing one is named."""
    assert code_files(codes_dir, ["itq"], [16, 8]) == [codes_dir / "itq-8.h5", codes_dir / "itq-16.h5"]
    with pytest.raises(GraphhashError, match=r"evaluate: .*nrdh-16\.h5 is missing"):
        code_files(codes_dir, ["itq", "nrdh"], [8, 16])
