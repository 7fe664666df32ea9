"""xmodal-nrdh: NRDH on paired data. The joint similarity against the modalities' cosines by brute force, the hash
stage's one network per modality in one Hamming space, the baselines stage across modalities, and a whole DVC run
on a Wiki-shaped dataset: every direction scored, search across modalities, and the one-line refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from conftest import new_project, run_in

from graphhash.errors import GraphhashError
from graphhash.files.codes import code_file, read_codes, unpack
from graphhash.files.features import open_features, read_features, write_features
from graphhash.graphs.knn import joint_features
from graphhash.nrdh.encoder import ItemEncoder, load_hash_network
from graphhash.params.baselines import BaselinesParams
from graphhash.params.graph import GraphParams
from graphhash.params.hash import HashParams
from graphhash.params.represent import RepresentParams
from graphhash.pipeline.baselines import baseline_codes
from graphhash.pipeline.hash import hash_codes
from graphhash.pipeline.neighbours import find_neighbours
from graphhash.pipeline.represent import represent

CLASSES = 4


def paired_views(count: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """``count`` pairs in 4 classes: a 12-d image view and a 5-d text view, each its class's centre in that view
    plus noise, non-negative like Wiki's histograms."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % CLASSES
    centres = {"image": np.random.default_rng(99).random((CLASSES, 12)) * 2,
               "text": np.random.default_rng(98).random((CLASSES, 5)) * 2}  # fmt: skip
    views = {m: np.abs(c[labels] + 0.5 * rng.normal(size=(count, c.shape[1]))) for m, c in centres.items()}
    return views, labels


@pytest.fixture(scope="module")
def paired_file(tmp_path_factory) -> Path:
    """A paired features file: 40 queries, 160 database = training pairs."""
    views, labels = paired_views(200, 0)
    query = np.arange(200) < 40
    path = tmp_path_factory.mktemp("paired") / "features.h5"
    write_features(path, [{m: x.astype(np.float32) for m, x in views.items()}], dims={"image": 12, "text": 5},
                   ids=[f"pair/{i:03d}" for i in range(200)], labels=labels,
                   masks={"query": query, "database": ~query, "train": ~query}, attrs={"backbone": "none"})  # fmt: skip
    return path


def test_joint_similarity_is_the_weighted_mean_of_the_modalities_cosines(paired_file):
    """The cosine of the joint rows is sum_m w_m cos_m / sum_m w_m, by brute force; one modality is its own."""
    fs = read_features(paired_file)

    def cosines(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        unit = x / np.linalg.norm(x, axis=1, keepdims=True)
        return unit @ unit.T

    for weights, (wi, wt) in (
        ({}, (1, 1)),
        ({"image": 1.0, "text": 3.0}, (1, 3)),
        ({"image": 0.0, "text": 2.0}, (0, 2)),
    ):
        joint = joint_features(fs, weights)
        assert joint.shape == (200, 17) and joint.dtype == np.float32
        expected = (wi * cosines(fs.views["image"]) + wt * cosines(fs.views["text"])) / (wi + wt)
        np.testing.assert_allclose(cosines(joint), expected, atol=1e-5)
    with open_features(paired_file) as one:
        only = one.only("text")
        assert joint_features(only, {"image": 5.0}) is only.features  # one modality: its own features, unread
    with pytest.raises(GraphhashError, match=r"^graph\.weights: names image, but .*features\.h5 holds the modalities "
                                             r"image, text: name every one or none$"):  # fmt: skip
        joint_features(fs, {"image": 1.0})
    with pytest.raises(GraphhashError, match=r"graph\.weights: at least one modality needs a positive weight"):
        joint_features(fs, {"image": 0.0, "text": 0.0})


GRAPH = GraphParams(kind="knn", nodes=6, rho=0.2)
REPRESENT = RepresentParams(steps=120, graphs_per_step=16, latent=16)
HASH = HashParams(input="graph", similarity=0.0, gamma=0.0, dropout=0.2, steps=150, batch_size=32)


def cross_map(query_codes: np.ndarray, database_codes: np.ndarray, query_labels, database_labels) -> float:
    """mAP@all of Hamming ranking by brute force: ascending distance, ties by database index, same class."""
    aps = []
    for code, label in zip(query_codes, query_labels, strict=True):
        distance = (code != database_codes).sum(axis=1)
        order = np.lexsort((np.arange(len(database_codes)), distance))
        relevant = database_labels[order] == label
        hits = np.cumsum(relevant)
        aps.append(np.sum(hits[relevant] / (np.flatnonzero(relevant) + 1)) / max(hits[-1], 1))
    return float(np.mean(aps))


@pytest.fixture(scope="module")
def hashed(paired_file, tmp_path_factory) -> Path:
    """The neighbours, represent and hash stages' functions on the paired file, at 8 and 16 bits."""
    out = tmp_path_factory.mktemp("hashed")
    find_neighbours(paired_file, GRAPH, out / "neighbours.h5")
    represent(paired_file, out / "neighbours.h5", "gcn", [8, 16], REPRESENT, GRAPH, out=out / "z", models=out / "ae",
              losses=out / "rl")  # fmt: skip
    hash_codes(paired_file, out / "neighbours.h5", out / "z", "gcn", [8, 16], HASH, GRAPH, codes=out / "codes",
               models=out / "models", losses=out / "hl")  # fmt: skip
    return out


def test_every_modality_gets_its_own_network_and_codes_in_one_hamming_space(paired_file, hashed):
    """One code file, model and loss record per modality and length; an image's code ranks the texts' codes (and
    back) far better than chance, by brute force; each saved network re-encodes its modality's items to the
    stored codes, from that modality's features alone."""
    assert sorted(p.name for p in (hashed / "codes").iterdir()) == [
        f"nrdh-gcn-{b}-{m}.h5" for b in (16, 8) for m in ("image", "text")
    ]
    assert sorted(p.name for p in (hashed / "hl").iterdir()) == [
        f"{b}-{m}.csv" for b in (16, 8) for m in ("image", "text")
    ]
    fs = read_features(paired_file)
    for bits in (8, 16):
        found = {m: read_codes(code_file(hashed / "codes", "nrdh-gcn", bits, m)) for m in ("image", "text")}
        assert {c.modality for c in found.values()} == {"image", "text"}
        for query, database in (("image", "text"), ("text", "image")):
            q, d = found[query], found[database]
            got = cross_map(unpack(q.query, bits), unpack(d.database, bits), q.query_labels, d.database_labels)
            assert got > 0.6, (bits, query, database, got)  # chance: about 1 / 4
        for modality, codes in found.items():
            folder = hashed / "models" / str(bits) / modality
            _, config = load_hash_network(folder)
            assert config["modality"] == modality and config["bits"] == bits and config["training"]["dropout"] == 0.2
            again = ItemEncoder.load(folder, paired_file).encode_file(paired_file)[0]
            np.testing.assert_array_equal(again[fs.query], unpack(codes.query, bits))
            np.testing.assert_array_equal(again[fs.database], unpack(codes.database, bits))


def test_a_query_is_hashed_from_its_own_modality_only(paired_file, hashed, tmp_path):
    """With graph inputs, a text query's kNN graph is among the training texts: changing the query items' image
    features leaves every text code as it was (a joint graph would not)."""
    fs = read_features(paired_file)
    image = fs.views["image"].copy()
    image[fs.query] = np.random.default_rng(5).random((int(fs.query.sum()), 12)) * 10
    changed = tmp_path / "changed.h5"
    write_features(changed, [{"image": image, "text": fs.views["text"]}], dims={"image": 12, "text": 5}, ids=fs.ids,
                   labels=fs.labels, masks={"query": fs.query, "database": fs.database, "train": fs.train},
                   attrs={"backbone": "none"})  # fmt: skip
    find_neighbours(changed, GRAPH, tmp_path / "neighbours.h5")
    hash_codes(changed, tmp_path / "neighbours.h5", hashed / "z", "gcn", [8], HASH, GRAPH, codes=tmp_path / "codes",
               models=tmp_path / "models", losses=tmp_path / "losses")  # fmt: skip
    before, after = (
        read_codes(code_file(folder, "nrdh-gcn", 8, "text")) for folder in (hashed / "codes", tmp_path / "codes")
    )
    np.testing.assert_array_equal(after.query, before.query)
    np.testing.assert_array_equal(after.database, before.database)
    images = [
        read_codes(code_file(folder, "nrdh-gcn", 8, "image")) for folder in (hashed / "codes", tmp_path / "codes")
    ]
    assert not np.array_equal(images[0].query, images[1].query)  # the images' own codes did change


def test_the_baselines_stage_fits_across_modalities_or_each_alone(paired_file, tmp_path):
    """cmfh: one model, codes of both modalities that retrieve across them; lsh: one hasher per modality, its
    codes of two modalities unrelated (chance); gch learns from the labels; a cross-modal method on a file of one
    modality is one line naming the param and the file."""
    params = BaselinesParams(methods=["lsh", "cmfh", "gch"], gch={"steps": 60, "hidden": 32, "batch_size": 32})
    baseline_codes(paired_file, 8, params, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{m}-8-{x}.h5" for m in ("cmfh", "gch", "lsh")
                                                          for x in ("image", "text")]  # fmt: skip
    found = {
        (m, x): read_codes(code_file(tmp_path, m, 8, x)) for m in ("cmfh", "gch", "lsh") for x in ("image", "text")
    }

    def across(method: str) -> float:
        q, d = found[method, "image"], found[method, "text"]
        return cross_map(unpack(q.query, 8), unpack(d.database, 8), q.query_labels, d.database_labels)

    assert across("cmfh") > 0.5 and across("gch") > 0.5 and across("lsh") < 0.45
    with open_features(paired_file) as fs:
        one = tmp_path / "one.h5"
        write_features(one, [{"image": fs.views["image"][()]}], dims={"image": 12}, ids=fs.ids, labels=fs.labels,
                       masks={"query": fs.query, "database": fs.database, "train": fs.train}, attrs={})  # fmt: skip
    with pytest.raises(GraphhashError, match=r"^baselines\.methods: cmfh hashes across modalities, but .*one\.h5 "
                                             r"holds one \(image\)$"):  # fmt: skip
        baseline_codes(one, 8, BaselinesParams(methods=["cmfh"]), tmp_path / "none")
    assert not (tmp_path / "none").exists()


# ---------------------------------------------------------------- a whole run on a Wiki-shaped dataset


def write_wiki_like(folder: Path) -> None:
    """A Wiki-shaped folder (the .mat and .list files as published) of class-structured pairs: 120 training pairs
    and 40 test pairs in 4 categories."""
    views, labels = paired_views(160, 1)
    folder.mkdir(parents=True)
    image, text = views["image"], views["text"]
    scipy.io.savemat(folder / "raw_features.mat", {"I_tr": image[:120], "I_te": image[120:], "T_tr": text[:120],
                                                    "T_te": text[120:]})  # fmt: skip
    for name, rows in (("trainset_txt_img_cat.list", range(120)), ("testset_txt_img_cat.list", range(120, 160))):
        (folder / name).write_text("".join(f"text{r:03d}\timage{r:03d}\t{labels[r] + 1}\n" for r in rows))


PAIRED_RUN = {
    "codes": {"bits": [8, 16]},
    "graph": {"nodes": 6, "rho": 0.2},
    "represent": {"steps": 80, "graphs_per_step": 16},
    "hash": {"input": "features", "similarity": 0.0, "gamma": 0.0, "dropout": 0.2, "steps": 80, "batch_size": 32},
    "baselines": {"methods": ["lsh", "cmfh"], "cmfh": {"iterations": 20}},
    "evaluate": {"map_at": [10], "neighbours": 5},
}


@pytest.fixture(scope="module")
def paired_run(tmp_path_factory) -> Path:
    """``dvc repro`` of the pipeline on a Wiki-shaped folder."""
    root = tmp_path_factory.mktemp("wiki-run")
    write_wiki_like(root / "wiki")
    work = new_project(root / "repo", {**PAIRED_RUN, "prepare": {"source": "wiki", "path": str(root / "wiki")}})
    run_in(work, "dvc", "repro", "-q")
    return work


def test_a_paired_run_scores_every_direction(paired_run):
    metrics = json.loads((paired_run / "metrics" / "metrics.json").read_text())
    ways = {"image->text", "text->image", "image->image", "text->text"}
    assert set(metrics) == {"lsh", "cmfh", "nrdh-gcn", "cosine"}
    assert set(metrics["cosine"]) == {"image->image", "text->text"}
    for method in ("lsh", "cmfh", "nrdh-gcn"):
        assert set(metrics[method]) == {"8", "16"} and set(metrics[method]["16"]) == ways
    for way in ("image->text", "text->image"):
        assert metrics["nrdh-gcn"]["16"][way]["map@all"] > 0.6 > metrics["lsh"]["16"][way]["map@all"]
    table = (paired_run / "metrics" / "results.md").read_text()
    assert "## image->text" in table and "## text->image" in table
    manifest = json.loads((paired_run / "data" / "manifest.json").read_text())
    assert manifest["modalities"] == ["image", "text"] and manifest["counts"]["query"] == 40
    assert sorted(p.name for p in (paired_run / "data" / "index" / "nrdh-gcn-16").iterdir()) == ["image", "text"]


def test_search_across_modalities_from_the_command(paired_run, tmp_path):
    """A test pair's text, by id, searches the images' index; the hits are exactly the evaluator's ranking of the
    stored codes (ascending distance, ties by database index)."""
    codes = {
        m: read_codes(paired_run / "data" / "codes" / "nrdh-gcn" / f"nrdh-gcn-16-{m}.h5") for m in ("image", "text")
    }
    item = codes["text"].query_ids[3]
    printed = run_in(paired_run, "graphhash", "search", "--id", item, "--query-modality", "text",
                     "--database-modality", "image", "--k", "5", "--json")  # fmt: skip
    answer, _ = json.JSONDecoder().raw_decode(printed[printed.index("{") :])  # the log line follows
    assert answer["run"]["query_modality"] == "text" and answer["run"]["database_modality"] == "image"
    query = unpack(codes["text"].query[3:4], 16)[0]
    database = unpack(codes["image"].database, 16)
    distance = (query != database).sum(axis=1)
    order = np.lexsort((np.arange(len(database)), distance))[:5]
    hits = answer["results"][0]["hits"]
    assert [h["id"] for h in hits] == [codes["image"].database_ids[r] for r in order]
    assert [h["distance"] for h in hits] == distance[order].tolist()


def test_queries_of_a_modality_the_run_never_hashed_are_one_line(paired_run, search_run):
    """A text query to an image-only run, or an audio query to a paired one: one line, exit status 2."""
    import subprocess
    import sys

    graphhash = str(Path(sys.executable).parent / "graphhash")
    for run, modality, held in ((search_run, "text", "image"), (paired_run, "audio", "image, text")):
        done = subprocess.run([graphhash, "search", "--id", "x", "--query-modality", modality], cwd=run,
                              capture_output=True, text=True)  # fmt: skip
        errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        assert done.returncode == 2 and len(errors) == 1, done.stderr
        assert errors[0].startswith(f"error: --query-modality: {modality}: the run's items hold only {held}, so it "
                                    f"has no {modality} hash network")  # fmt: skip


def test_the_features_file_holds_one_dataset_per_modality(paired_run):
    fs = read_features(paired_run / "data" / "features.h5")
    assert fs.modalities == ["image", "text"] and fs.views["image"].shape == (160, 12)
    assert fs.views["text"].shape == (160, 5) and fs.attrs["backbone"] == "none (wiki vectors)"
    with pytest.raises(
        GraphhashError, match=r"features\.h5: holds the modalities image, text, and this step reads one"
    ):
        _ = fs.features
    with pytest.raises(GraphhashError, match=r"features\.h5: no features of modality 'audio' \(it holds image, text\)"):
        fs.view("audio")


def test_items_of_one_modality_join_that_modalitys_index_as_a_rebuild_would_hold_them(paired_run, tmp_path):
    """``graphhash add --vectors``: five texts (the test pairs' own text features) join the texts' index, at its end,
    and an image query across modalities ranks them exactly as a brute force over the code file's texts and the
    codes the text network gives the new rows; the images' index is untouched; ``dvc repro`` rebuilds the same
    index. A row holding a NaN, rows of another width, and images sent to a run of features are one line each."""
    import shutil
    import subprocess
    import sys

    from PIL import Image

    from graphhash.files.index import read_index
    from graphhash.retrieval.retriever import Retriever

    run = tmp_path / "run"
    shutil.copytree(paired_run, run, symlinks=True)
    fs = read_features(run / "data" / "features.h5")
    rows = np.asarray(fs.view("text"))[np.flatnonzero(fs.query)[:5]]
    np.save(run / "texts.npy", rows)
    (run / "texts.txt").write_text("".join(f"new/text{i}\n" for i in range(5)), encoding="utf-8")
    images = read_index(run / "data" / "index" / "nrdh-gcn-16" / "image").count
    out = run_in(run, "graphhash", "add", "--vectors", "texts.npy", "--modality", "text", "--ids", "texts.txt")
    assert "added 5 items" in out
    assert read_index(run / "data" / "index" / "nrdh-gcn-16" / "image").count == images

    codes = read_codes(run / "data" / "codes" / "nrdh-gcn" / "nrdh-gcn-16-text.h5")
    encoder = ItemEncoder.load(run / "models" / "nrdh-gcn" / "16" / "text", run / "data" / "features.h5")
    database = np.concatenate([codes.database, np.packbits(encoder.encode_features(rows), axis=1)])
    ids = codes.database_ids + [f"new/text{i}" for i in range(5)]
    image_codes = read_codes(run / "data" / "codes" / "nrdh-gcn" / "nrdh-gcn-16-image.h5")
    retriever = Retriever.from_run(run, bits=16, query_modality="image", database_modality="text")
    found = retriever.search_ids(image_codes.query_ids[:5], len(ids))
    query = unpack(image_codes.query[:5], 16)
    distance = (query[:, None, :] != unpack(database, 16)[None]).sum(axis=2)
    for result, row in zip(found, distance, strict=True):
        order = np.lexsort((np.arange(len(ids)), row))
        assert [hit.id for hit in result.hits] == [ids[r] for r in order]
    before = read_index(run / "data" / "index" / "nrdh-gcn-16" / "text")
    run_in(run, "dvc", "repro")
    after = read_index(run / "data" / "index" / "nrdh-gcn-16" / "text")
    assert after.ids == before.ids and np.array_equal(after.codes, before.codes)

    graphhash = str(Path(sys.executable).parent / "graphhash")

    def fails(*args: str) -> str:
        done = subprocess.run([graphhash, *args], cwd=run, capture_output=True, text=True)
        errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        assert done.returncode == 2 and len(errors) == 1, done.stderr
        return errors[0]

    bad = rows.copy()
    bad[2, 1] = np.nan
    np.save(run / "bad.npy", bad)
    assert fails("add", "--vectors", "bad.npy", "--modality", "text") == (
        "error: bad.npy: row 2: its features hold NaN or infinite values (set extract.on_bad_image: skip to leave such "
        "files out); nothing was added"
    )
    np.save(run / "wide.npy", np.zeros((2, rows.shape[1] + 1), dtype=np.float32))
    assert fails("add", "--vectors", "wide.npy", "--modality", "text") == (
        f"error: wide.npy: a float32 array of shape (2, {rows.shape[1] + 1}); the run's text features are float rows "
        f"of {rows.shape[1]} values"
    )
    huge = np.lib.format.open_memmap(run / "huge.npy", mode="w+", dtype=np.float32, shape=(10**9, rows.shape[1]))
    del huge  # a sparse file: its header declares 10^9 rows, none of them stored
    assert fails("add", "--vectors", "huge.npy", "--modality", "text").startswith(
        f"error: huge.npy: its 1,000,000,000 rows as float32 would need {2 * rows.shape[1] * 4 * 10**9 / 2**30:.1f} GiB"
    )
    Image.new("RGB", (8, 8)).save(run / "x.png")
    assert "the run's items are feature vectors (wiki), made without a backbone" in fails("add", "x.png")
