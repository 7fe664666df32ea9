"""The evaluate stage's library: cosine ranking against brute force, and the files it writes."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from graphhash.errors import GraphhashError
from graphhash.evaluation import metrics as metrics_module
from graphhash.evaluation.figures import THUMB
from graphhash.evaluation.metrics import RECALL_GRID, cosine_map
from graphhash.files.codes import CodeSet, pack, write_codes
from graphhash.files.features import write_features
from graphhash.files.manifest import Manifest, Split
from graphhash.params.baselines import BaselinesParams
from graphhash.params.codes import CodesParams
from graphhash.params.evaluate import EvaluateParams
from graphhash.params.prepare import PrepareParams
from graphhash.pipeline.evaluate import code_files, cosine_queries, evaluate_codes
from graphhash.pipeline.prepare import prepare

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
    write_features(path, [{"image": x}], dims={"image": 6}, ids=DIGIT_IDS, labels=labels,
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


def brute_force_truth(x: np.ndarray, query: np.ndarray, r: int) -> np.ndarray:
    """(q, n) bool: each query's r nearest database items by cosine (float64, a sort per query, ties by index)."""
    unit = x.astype(np.float64) / np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True)
    sims = unit[query] @ unit[~query].T
    truth = np.zeros(sims.shape, dtype=bool)
    for i, row in enumerate(sims):
        truth[i, sorted(range(len(row)), key=lambda j, row=row: (-row[j], j))[:r]] = True
    return truth


def brute_force_recall(distance: np.ndarray, relevant: np.ndarray, k: int) -> float:
    """The mean fraction of each query's relevant items among its first k by Hamming distance, ties by index."""
    found = [rel[sorted(range(len(d)), key=lambda j, d=d: (d[j], j))[:k]].sum() / rel.sum()
             for d, rel in zip(distance, relevant, strict=True)]  # fmt: skip
    return float(np.mean(found))


def test_cosine_map_matches_brute_force(features):
    _, x, labels, query = features
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    scores = unit[query] @ unit[~query].T
    relevant = labels[query][:, None] == labels[~query][None, :]
    result = cosine_map(x[query], x[~query], labels[query], labels[~query], (10, 500), block_size=7)
    assert set(result) == {"map@all", "map@10", "map@500"}
    assert result["map@all"] == pytest.approx(brute_force_map(scores, relevant, 120), rel=1e-5)
    assert result["map@10"] == pytest.approx(brute_force_map(scores, relevant, 10), rel=1e-5)
    assert result["map@500"] == pytest.approx(result["map@all"], rel=1e-12)  # K beyond the database


def test_cosine_map_on_a_large_database_ranks_fewer_queries_at_once_with_the_same_result(features, monkeypatch):
    """SORT_ELEMENTS caps a block's (query, item) pairs: with a cap below one block, blocks shrink (down to one
    query) and the figures stay those of the brute force."""
    _, x, labels, query = features
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    relevant = labels[query][:, None] == labels[~query][None, :]
    monkeypatch.setattr(metrics_module, "SORT_ELEMENTS", 50)  # fewer than one query's database: one query a block
    result = cosine_map(x[query], x[~query], labels[query], labels[~query], (10,))
    assert result["map@all"] == pytest.approx(brute_force_map(unit[query] @ unit[~query].T, relevant, 120), rel=1e-5)


def test_cosine_queries_are_every_query_or_an_even_spread_of_them():
    query = np.zeros(31, dtype=bool)
    query[[1, 4, 9, 15, 22, 29, 30]] = True
    np.testing.assert_array_equal(cosine_queries(query, 0), query)
    np.testing.assert_array_equal(cosine_queries(query, 7), query)
    np.testing.assert_array_equal(cosine_queries(query, 99), query)
    assert np.flatnonzero(cosine_queries(query, 3)).tolist() == [1, 15, 30]  # first, middle, last
    assert np.flatnonzero(cosine_queries(query, 1)).tolist() == [1]


def test_cosine_map_breaks_ties_by_database_index():
    """Scaled one-hot features: every similarity is exactly 0 or 1, so the ranking is decided by the tie rule."""
    rng = np.random.default_rng(2)
    n, query_n = 200, 20
    direction, labels = rng.integers(0, 3, n), rng.integers(0, 4, n)  # direction shares little with class
    x = (np.eye(3)[direction] * rng.integers(1, 5, (n, 1))).astype(np.float32)
    query = np.zeros(n, dtype=bool)
    query[:query_n] = True
    scores = (direction[query][:, None] == direction[~query][None, :]).astype(float)
    relevant = labels[query][:, None] == labels[~query][None, :]
    result = cosine_map(x[query], x[~query], labels[query], labels[~query], (15,), block_size=6)
    assert result["map@15"] == pytest.approx(brute_force_map(scores, relevant, 15), rel=1e-9)
    assert result["map@all"] == pytest.approx(brute_force_map(scores, relevant, n - query_n), rel=1e-9)


def write_manifest(path, source: str, source_path: str, labels: np.ndarray, query: np.ndarray,
                   modalities: tuple[str, ...] = ("image",)):  # fmt: skip
    Manifest(source=source, path=source_path, modalities=list(modalities), classes=[str(c) for c in range(4)],
             ids=DIGIT_IDS, labels=labels, split=Split(query, ~query, ~query),
             content_sha256="-").save(path)  # fmt: skip
    return path


# (method, bits, file under the codes folder): laid out as the hash and baselines stages write them; lsh is
# left behind by a baseline since removed from baselines.methods, nrdh-cheby-32 by a filter and length since
# removed from codes
CODE_FILES = [
    ("nrdh-gcn", 8, "nrdh-gcn-8.h5"),
    ("nrdh-gcn", 16, "nrdh-gcn-16.h5"),
    ("itq", 8, "baselines-8/itq-8.h5"),
    ("itq", 16, "baselines-16/itq-16.h5"),
    ("lsh", 8, "baselines-8/lsh-8.h5"),
    ("nrdh-cheby", 32, "nrdh-cheby-32.h5"),
]


@pytest.fixture
def codes_dir(features, tmp_path):
    """The code files of CODE_FILES, random bits; returns the folder and {(method, bits): bool codes (150, bits)}."""
    _, _, labels, query = features
    ids = np.array(DIGIT_IDS)
    rng = np.random.default_rng(1)
    written = {}
    for method, bits, name in CODE_FILES:
        codes = rng.random((150, bits)) < 0.5
        write_codes(tmp_path / "codes" / name, CodeSet(
            method, bits, "image", pack(codes[query]), pack(codes[~query]), list(ids[query]), list(ids[~query]),
            labels[query], labels[~query]))  # fmt: skip
        written[method, bits] = codes
    return tmp_path / "codes", written


def run_evaluate(tmp_path, features_path, manifest, codes_folder, figure_queries=3, name="metrics"):
    out = tmp_path / name
    params = EvaluateParams(map_at=[10], radius=2, figure_queries=figure_queries)
    codes = CodesParams(bits=[8, 16], filters=["gcn"])
    baselines = BaselinesParams(methods=["itq"])
    metrics = evaluate_codes(codes_folder, features_path, manifest, params, codes, baselines,
                             metrics_path=out / "metrics.json", results_path=out / "results.md",
                             curves=out / "curves", figures=out / "retrieval")  # fmt: skip
    return out, metrics


def read_csv(path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def brute_force_ball(distance: np.ndarray, relevant: np.ndarray, radius: int) -> tuple[float, float]:
    """Mean precision (0 for an empty ball) and recall (0 without relevant items) within ``radius``."""
    precision, recall = [], []
    for d, rel in zip(distance, relevant, strict=True):
        ball = d <= radius
        precision.append(rel[ball].sum() / ball.sum() if ball.any() else 0.0)
        recall.append(rel[ball].sum() / rel.sum() if rel.any() else 0.0)
    return float(np.mean(precision)), float(np.mean(recall))


def test_evaluate_codes_writes_metrics_tables_and_curves(features, codes_dir, tmp_path):
    path, x, labels, query = features
    folder, written = codes_dir
    manifest = write_manifest(tmp_path / "manifest.json", "digits", "", labels, query)
    out, returned = run_evaluate(tmp_path, path, manifest, folder)

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics == returned
    # only what the params name: not the stale lsh and nrdh-cheby files lying in the folder
    assert set(metrics) == {"nrdh-gcn", "itq", "cosine"} and set(metrics["itq"]) == {"8", "16"}
    assert set(metrics["nrdh-gcn"]["8"]) == {"map@all", "map@10", "p@r2", "r@r2", "f1@r2", "nmap@10", "recall@10"}
    relevant = labels[query][:, None] == labels[~query][None, :]
    truth = brute_force_truth(x, query, 100)  # evaluate.neighbours' default
    for method in ("nrdh-gcn", "itq"):
        for bits in (8, 16):
            codes = written[method, bits]
            distance = (codes[query][:, None, :] != codes[~query][None, :, :]).sum(axis=2)
            got = metrics[method][str(bits)]
            assert got["map@all"] == pytest.approx(brute_force_map(-distance, relevant, 120), rel=1e-9)
            assert got["map@10"] == pytest.approx(brute_force_map(-distance, relevant, 10), rel=1e-9)
            p, r = brute_force_ball(distance, relevant, 2)
            assert (got["p@r2"], got["r@r2"]) == pytest.approx((p, r), rel=1e-9)
            assert got["nmap@10"] == pytest.approx(brute_force_map(-distance, truth, 10), rel=1e-9)
            assert got["recall@10"] == pytest.approx(brute_force_recall(distance, truth, 10), rel=1e-9)
            # the radius curves hold the same numbers, one row per method and radius (6 significant digits)
            for kind, index in (("precision", 0), ("recall", 1)):
                rows = [row for row in read_csv(out / "curves" / f"{kind}_radius" / f"{bits}.csv")
                        if row["method"] == method]  # fmt: skip
                assert [int(row["radius"]) for row in rows] == list(range(bits + 1))
                for radius in (0, 2, bits):
                    want = brute_force_ball(distance, relevant, radius)[index]
                    assert float(rows[radius][kind]) == pytest.approx(want, rel=1e-5, abs=1e-9)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    assert metrics["cosine"]["map@10"] == pytest.approx(
        brute_force_map(unit[query] @ unit[~query].T, relevant, 10), rel=1e-5
    )

    table = (out / "results.md").read_text()
    assert "| nrdh-gcn | " in table and "| itq | " in table and "cosine" in table and "## Graph filters" in table
    assert f"| itq | {metrics['itq']['8']['map@all']:.4f} | {metrics['itq']['16']['map@all']:.4f} |" in table
    # long-format curves: a method column, so the plots name no method
    rank = read_csv(out / "curves" / "pr_rank" / "8.csv")
    assert list(rank[0]) == ["method", "recall", "precision"] and len(rank) == 2 * len(RECALL_GRID)
    assert sorted({row["method"] for row in rank}) == ["itq", "nrdh-gcn"]
    assert [float(row["recall"]) for row in rank if row["method"] == "itq"] == pytest.approx(list(RECALL_GRID))
    radius = read_csv(out / "curves" / "precision_radius" / "16.csv")
    assert list(radius[0]) == ["method", "radius", "precision"] and len(radius) == 2 * 17
    assert sorted(p.relative_to(out / "curves").as_posix() for p in (out / "curves").rglob("*.csv")) == [
        f"{curve}/{bits}.csv" for curve in ("pr_rank", "precision_radius", "recall_radius") for bits in (16, 8)
    ]
    figures = sorted(p.name for p in (out / "retrieval").iterdir())
    assert figures == ["itq-16.png", "itq-8.png", "nrdh-gcn-16.png", "nrdh-gcn-8.png"]
    assert Image.open(out / "retrieval" / "itq-8.png").size[1] > 3 * THUMB  # three query rows


def test_no_figures_without_images_or_when_turned_off(features, codes_dir, tmp_path):
    """Feature-only sources (npy) and figure_queries = 0 leave the declared folder empty."""
    path, _, labels, query = features
    for name, source, count in (("npy", "npy", 3), ("off", "digits", 0)):
        manifest = write_manifest(tmp_path / f"{name}.json", source, str(tmp_path), labels, query)
        out, _ = run_evaluate(tmp_path, path, manifest, codes_dir[0], figure_queries=count, name=name)
        assert (out / "metrics.json").is_file()
        assert list((out / "retrieval").iterdir()) == []


def test_code_files_come_from_the_params_not_from_what_lies_in_the_folder(codes_dir):
    """Files are found by their method, bits and modality attributes, wherever they lie; a stale file (a method or
    length since removed) is not evaluated; a missing one is named."""
    folder, _ = codes_dir
    # in (method, bits) order, whatever the order asked for
    assert code_files(folder, ["itq"], [16, 8], ["image"]) == {
        ("itq", 8): {"image": folder / "baselines-8/itq-8.h5"},
        ("itq", 16): {"image": folder / "baselines-16/itq-16.h5"},
    }
    assert list(code_files(folder, ["nrdh-gcn", "lsh"], [8], ["image"])) == [("lsh", 8), ("nrdh-gcn", 8)]
    with pytest.raises(GraphhashError) as info:
        code_files(folder, ["itq", "lsh", "nrdh-cheby"], [8, 32], ["image"])
    assert str(info.value) == (f"evaluate: no code file in {folder} for itq at 32 bits (image), lsh at 32 bits "
                               "(image), nrdh-cheby at 8 bits (image); run the stages that write them "
                               "(dvc repro)")  # fmt: skip
    # a paired run needs every modality's file
    with pytest.raises(GraphhashError, match=r"for itq at 8 bits \(text\);"):
        code_files(folder, ["itq"], [8], ["image", "text"])
    # the file name is only for people: a renamed file is still found, by what it holds
    (folder / "nrdh-gcn-8.h5").rename(folder / "renamed.h5")
    assert code_files(folder, ["nrdh-gcn"], [8], ["image"]) == {("nrdh-gcn", 8): {"image": folder / "renamed.h5"}}


def test_a_file_that_is_not_a_code_file_is_named(codes_dir):
    folder, _ = codes_dir
    (folder / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(GraphhashError, match=r"junk\.h5: cannot open as a codes file"):
        code_files(folder, ["itq"], [8], ["image"])


def test_paired_codes_are_scored_in_every_direction_against_brute_force(tmp_path):
    """Two modalities: each method's image codes rank the text database and back (and each within itself); the
    metrics nest by direction, the cosine row is within one modality only, and results.md has a table set per
    direction. Hamming ranking with ties by database index and same-class relevance, as a brute force has it."""
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 4, 150)
    views = {
        "image": rng.normal(size=(150, 6)).astype(np.float32),
        "text": rng.normal(size=(150, 3)).astype(np.float32),
    }
    query = np.zeros(150, dtype=bool)
    query[:30] = True
    path = tmp_path / "features.h5"
    write_features(path, [views], dims={"image": 6, "text": 3}, ids=DIGIT_IDS, labels=labels,
                   masks={"query": query, "database": ~query, "train": ~query}, attrs={})  # fmt: skip
    manifest = write_manifest(tmp_path / "manifest.json", "wiki", str(tmp_path), labels, query, ("image", "text"))
    ids = np.array(DIGIT_IDS)
    written = {}
    for method in ("itq", "nrdh-gcn"):
        for bits in (8, 16):
            for modality in ("image", "text"):
                codes = rng.random((150, bits)) < 0.5
                written[method, bits, modality] = codes
                write_codes(tmp_path / "codes" / f"{method}-{bits}-{modality}.h5", CodeSet(
                    method, bits, modality, pack(codes[query]), pack(codes[~query]), list(ids[query]),
                    list(ids[~query]), labels[query], labels[~query]))  # fmt: skip
    out, metrics = run_evaluate(tmp_path, path, manifest, tmp_path / "codes", figure_queries=0)
    ways = ["image->text", "text->image", "image->image", "text->text"]
    assert set(metrics["itq"]["8"]) == set(ways) and set(metrics["cosine"]) == {"image->image", "text->text"}
    relevant = labels[query][:, None] == labels[~query][None, :]
    for (method, bits, q_modality), codes in written.items():
        for d_modality in ("image", "text"):
            database = written[method, bits, d_modality][~query]
            distance = (codes[query][:, None, :] != database[None, :, :]).sum(axis=2)
            got = metrics[method][str(bits)][f"{q_modality}->{d_modality}"]
            assert got["map@all"] == pytest.approx(brute_force_map(-distance, relevant, 120), rel=1e-9)
    unit = views["text"] / np.linalg.norm(views["text"], axis=1, keepdims=True)
    assert metrics["cosine"]["text->text"]["map@10"] == pytest.approx(
        brute_force_map(unit[query] @ unit[~query].T, relevant, 10), rel=1e-5
    )
    table = (out / "results.md").read_text()
    assert [line for line in table.splitlines() if line.startswith("## ")] == [f"## {way}" for way in ways]
    cell = f"| itq | {metrics['itq']['8']['text->image']['map@all']:.4f} |"
    assert cell in table.split("## text->image")[1].split("## image->image")[0]
    rank = read_csv(out / "curves" / "pr_rank" / "8.csv")
    assert sorted({row["method"] for row in rank}) == sorted(f"{m} {way}" for m in ("itq", "nrdh-gcn") for way in ways)


def test_one_class_writes_the_label_free_metrics_only(features, codes_dir, tmp_path, caplog, make_tree):
    """Every item of one class is relevant to every query, so every mAP would be 1.0000: say so in one line and
    write the label-free metrics only (issue 30, 3; issue 31), from prepare (a folder whose images sit in one class
    folder) and from evaluate."""
    path, x, _, query = features
    manifest = tmp_path / "one.json"
    Manifest(
        source="npy",
        path=str(tmp_path),
        modalities=["image"],
        classes=["cats"],
        ids=DIGIT_IDS,
        labels=np.zeros(150, dtype=np.int64),
        split=Split(query, ~query, ~query),
        content_sha256="-",
    ).save(manifest)
    with caplog.at_level("WARNING", logger="graphhash"):
        out, metrics = run_evaluate(tmp_path, path, manifest, codes_dir[0])
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert set(metrics) == {"nrdh-gcn", "itq"}  # no cosine row: by true neighbours it scores 1
    assert set(metrics["itq"]["16"]) == {"nmap@10", "recall@10"}
    codes = codes_dir[1]["itq", 16]
    distance = (codes[query][:, None, :] != codes[~query][None, :, :]).sum(axis=2)
    truth = brute_force_truth(x, query, 100)
    assert metrics["itq"]["16"]["nmap@10"] == pytest.approx(brute_force_map(-distance, truth, 10), rel=1e-9)
    table = (out / "results.md").read_text()
    assert [line for line in table.splitlines() if line.startswith("## ")] == [
        "## nmap@10", "## recall@10", "## Graph filters (nmap@10)"]  # fmt: skip
    assert "cosine" not in table
    assert (out / "curves" / "pr_rank" / "16.csv").is_file() and list((out / "retrieval").iterdir()) == []
    (warning,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warning.startswith("evaluate: the items have one class (cats), so every item is relevant to every query")
    assert warning.endswith("the label-free metrics only (nmap@K, recall@K)")
    caplog.clear()
    folder = make_tree(tmp_path / "photos", [f"holiday/{i}.png" for i in range(6)])
    with caplog.at_level("WARNING", logger="graphhash"):
        prepare(PrepareParams(source="folder", path=str(folder), query_size=1))
    assert [r.getMessage()[:45] for r in caplog.records if r.levelname == "WARNING"] == [
        "prepare: the items have one class (holiday), "
    ]


def test_unlabelled_items_get_the_label_free_metrics_and_figures_framed_by_true_neighbours(features, codes_dir,
                                                                                          tmp_path):  # fmt: skip
    """No labels (a label matrix of no columns): nmap@K and recall@K against a brute force on a subset of the queries
    (evaluate.cosine_queries), and the retrieval figures, which frame the hits by the true neighbours."""
    path, x, _, query = features
    manifest = tmp_path / "none.json"
    Manifest(source="digits", path="", modalities=["image"], classes=[], ids=DIGIT_IDS,
             labels=np.zeros((150, 0), dtype=bool), split=Split(query, ~query, ~query),
             content_sha256="-").save(manifest)  # fmt: skip
    out, folder, written = tmp_path / "none", tmp_path / "codes-none", codes_dir[1]
    for (method, bits), codes in written.items():  # the code files of an unlabelled run: labels of no columns
        none = np.zeros((150, 0), dtype=bool)
        write_codes(folder / f"{method}-{bits}.h5", CodeSet(
            method, bits, "image", pack(codes[query]), pack(codes[~query]), DIGIT_IDS[:30], DIGIT_IDS[30:],
            none[query], none[~query]))  # fmt: skip
    params = EvaluateParams(map_at=[10, 50], neighbours=20, cosine_queries=7, figure_queries=2)
    metrics = evaluate_codes(folder, path, manifest, params, CodesParams(bits=[8, 16], filters=["gcn"]),
                             BaselinesParams(methods=["itq"]), metrics_path=out / "metrics.json",
                             results_path=out / "results.md", curves=out / "curves",
                             figures=out / "retrieval")  # fmt: skip
    ranked = cosine_queries(query, 7)
    truth = brute_force_truth(x[ranked | ~query], ranked[ranked | ~query], 20)
    codes = written["nrdh-gcn", 8]
    distance = (codes[ranked][:, None, :] != codes[~query][None, :, :]).sum(axis=2)
    got = metrics["nrdh-gcn"]["8"]
    assert set(got) == {"nmap@10", "nmap@50", "recall@10", "recall@50"}
    assert got["nmap@50"] == pytest.approx(brute_force_map(-distance, truth, 50), rel=1e-9)
    assert got["recall@10"] == pytest.approx(brute_force_recall(distance, truth, 10), rel=1e-9)
    assert sorted(p.name for p in (out / "retrieval").iterdir()) == [
        "itq-16.png", "itq-8.png", "nrdh-gcn-16.png", "nrdh-gcn-8.png"]  # fmt: skip
    with pytest.raises(GraphhashError, match=r"^evaluate.neighbours: 121 true neighbours per query, but the database "
                       r"holds 120 items; set it to at most 120$"):  # fmt: skip
        evaluate_codes(folder, path, manifest, EvaluateParams(neighbours=121),
                       CodesParams(bits=[8], filters=["gcn"]), BaselinesParams(methods=["itq"]),
                       metrics_path=tmp_path / "bad" / "metrics.json", results_path=tmp_path / "bad" / "results.md",
                       curves=tmp_path / "bad" / "curves", figures=tmp_path / "bad" / "retrieval")  # fmt: skip
    assert not (tmp_path / "bad").exists()  # nothing written
