"""Searching a trained run: ``Retriever`` and ``graphhash search`` on a real ``dvc repro`` of the pipeline."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from conftest import run_in
from PIL import Image

from graphhash.errors import GraphhashError
from graphhash.files.codes import pack, read_codes
from graphhash.files.features import read_features
from graphhash.hamming import top_k
from graphhash.retrieval.retriever import Retriever

GRAPHHASH = str(Path(sys.executable).parent / "graphhash")


def codes_of(run: Path, bits: int):
    return read_codes(run / "data" / "codes" / "nrdh-gcn" / f"nrdh-gcn-{bits}-image.h5")


def query_png(run: Path, retriever: Retriever, item_id: str, folder: Path) -> Path:
    """An item of the run saved as a PNG file (lossless), as a user would have it."""
    path = folder / (item_id.replace("/", "_") + ".png")
    retriever.image(item_id).save(path)
    return path


@pytest.fixture(scope="module")
def retriever(search_run) -> Retriever:
    return Retriever.from_run(search_run)


def test_the_run_opens_with_its_longest_code_and_a_flat_index(retriever, search_run):
    info = retriever.info
    assert (info["method"], info["bits"], info["index"]) == ("nrdh-gcn", 24, "flat")
    assert info["count"] == len(codes_of(search_run, 24).database_ids) == 180
    assert info["classes"] == [str(c) for c in range(10)] and info["images"]
    assert Retriever.from_run(search_run, bits=16).info["bits"] == 16


@pytest.mark.parametrize("bits", [16, 24])
def test_searching_every_query_id_gives_the_evaluators_ranking(search_run, bits):
    """For each query item, the results are the evaluator's ranking of the database (graphhash.hamming.top_k on
    the code file's codes): ids, distances and relevance."""
    retriever = Retriever.from_run(search_run, bits=bits)
    found = codes_of(search_run, bits)
    results = retriever.search_ids(found.query_ids, 25)
    expected, distances = top_k(found.query, found.database, 25)
    for result, rows, dist, label in zip(results, expected, distances, found.query_labels, strict=True):
        assert [hit.id for hit in result.hits] == [found.database_ids[r] for r in rows]
        assert [hit.distance for hit in result.hits] == dist.tolist()
        assert [hit.relevant for hit in result.hits] == (found.database_labels[rows] == label).tolist()
        assert result.label == label and result.class_name == str(label)


def test_an_image_file_is_embedded_and_hashed_as_the_run_did_its_own_items(retriever, search_run, tmp_path):
    """A query item's image, as a PNG file: the backbone gives its features in the features file (to float
    precision), and hashing them gives its stored code for (nearly) every query."""
    found = codes_of(search_run, 24)
    fs = read_features(search_run / "data" / "features.h5")
    row = {item_id: i for i, item_id in enumerate(fs.ids)}
    images = [np.asarray(Image.open(query_png(search_run, retriever, i, tmp_path)).convert("RGB"))
              for i in found.query_ids]  # fmt: skip
    features = retriever.encoder.embed(images)
    np.testing.assert_allclose(features, fs.features[[row[i] for i in found.query_ids]], rtol=1e-4, atol=1e-4)
    codes = pack(retriever.encoder.encode_features(features))
    assert (codes == found.query).all(axis=1).mean() >= 0.9
    files = [(str(p), p.read_bytes()) for p in sorted(tmp_path.glob("*.png"))[:3]]
    for result in retriever.search_images(files, 5):
        assert len(result.hits) == 5 and result.label is None and all(h.relevant is None for h in result.hits)
        assert [h.distance for h in result.hits] == sorted(h.distance for h in result.hits)


def test_the_run_s_own_features_hash_to_its_stored_codes(retriever, search_run):
    """Every row of the run's own features file is hashed as the hash stage hashed it: the query items join the
    graph as new items, and a training item, known by its id, leaves itself out of its neighbours, as in the run;
    so every code is the stored one. Without the ids a training item would be its own nearest neighbour."""
    found = codes_of(search_run, 24)
    codes, fs = retriever.encoder.encode_file(search_run / "data" / "features.h5")
    row = {item_id: i for i, item_id in enumerate(fs.ids)}
    database, queries = [row[i] for i in found.database_ids], [row[i] for i in found.query_ids]
    assert np.array_equal(pack(codes[database]), found.database)
    assert np.array_equal(pack(codes[queries]), found.query)
    as_new = retriever.encoder.encode_features(fs.view("image"))  # every row a new item
    assert np.array_equal(as_new[queries], codes[queries]) and not np.array_equal(as_new[database], codes[database])


def test_search_command_prints_a_table_json_and_a_contact_sheet(retriever, search_run, tmp_path):
    found = codes_of(search_run, 24)
    image = query_png(search_run, retriever, found.query_ids[0], tmp_path)
    table = run_in(search_run, "graphhash", "search", str(image), "--k", "4")
    assert "nrdh-gcn, 24 bits, image -> image, flat index of 180 items" in table and f"query: {image}" in table
    assert len([line for line in table.splitlines() if line.strip()[:1].isdigit()]) == 4
    out = run_in(search_run, "graphhash", "search", "--id", found.query_ids[1], "--k", "6", "--json",
                 "--figure", str(tmp_path / "sheet.png"))  # fmt: skip
    payload = json.loads(out[: out.rindex("}") + 1])
    (result,) = payload["results"]
    expected, _ = top_k(found.query[1:2], found.database, 6)
    assert [hit["id"] for hit in result["hits"]] == [found.database_ids[r] for r in expected[0]]
    assert payload["run"]["bits"] == 24
    with Image.open(tmp_path / "sheet.png") as sheet:
        assert sheet.width > 6 * sheet.height // 2  # one row: the query, then its 6 results
    (tmp_path / "folder" / "inner").mkdir(parents=True)
    shutil.copy(image, tmp_path / "folder" / "inner" / "one.png")
    folder = run_in(search_run, "graphhash", "search", str(tmp_path / "folder"), "--k", "2", "--bits", "16")
    assert folder.count("query: ") == 1 and "16 bits" in folder
    features = run_in(search_run, "graphhash", "search", "--features", "data/features.h5", "--k", "1", "--json")
    assert len(json.loads(features[: features.rindex("}") + 1])["results"]) == 200


def fails(cwd: Path, *args: str) -> str:
    """Run graphhash; it must exit 2 with exactly one ``error:`` line and no traceback."""
    done = subprocess.run([GRAPHHASH, *args], cwd=cwd, capture_output=True, text=True)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 2 and len(errors) == 1 and "Traceback" not in done.stderr, done.stderr
    return errors[0]


def test_bad_queries_are_one_line_each(search_run, tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    assert "notes.png: cannot decode image" in fails(search_run, "search", str(text))
    assert "0x" not in fails(search_run, "search", str(text))  # no object addresses
    assert "id 'nope': not a query or database item" in fails(search_run, "search", "--id", "nope")
    assert "--k: must be at least 1" in fails(search_run, "search", "--id", "digits/0000", "--k", "0")
    assert "no such file or folder" in fails(search_run, "search", str(tmp_path / "missing.jpg"))
    indexed = "no index of nrdh-cheby (image) (indexed: nrdh-gcn at 16 bits (image), nrdh-gcn at 24 bits (image))"
    assert indexed in fails(search_run, "search", "--id", "x", "--method", "nrdh-cheby")
    assert "give image files or folders" in fails(search_run, "search")
    other = tmp_path / "other.h5"
    with h5py.File(search_run / "data" / "features.h5") as src, h5py.File(other, "w") as dst:
        for key in src:
            src.copy(key, dst)
        dst.attrs.update(src.attrs)
        del dst["features/image"]
        dst["features/image"] = np.zeros((len(src["labels"]), 7), dtype=np.float32)
    message = fails(search_run, "search", "--features", str(other))
    assert f"{other}: image features of 7 dimensions, but the hash network takes 1280" in message


def test_a_run_whose_artefacts_disagree_is_one_line(search_run, tmp_path):
    """Weights other than the features' (params.yaml edited after the run), or features of another backbone
    dimension than the hash network's (a run left half-done), are refused before any search."""
    work = tmp_path / "run"
    shutil.copytree(search_run, work, symlinks=True)
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["extract"]["weights"] = "none"
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    image = work / "q.png"
    Image.new("RGB", (8, 8), "white").save(image)
    assert "extract.weights: gives none, but" in fails(work, "search", str(image))
    features = work / "data" / "features.h5"
    data = features.read_bytes()
    features.unlink()  # a file of its own, never DVC's cached copy
    features.write_bytes(data)
    with h5py.File(features, "a") as f:
        f.attrs["dims"] = '{"image": 768}'
    with pytest.raises(GraphhashError, match="image features of 768 dimensions, but the hash network takes 1280"):
        Retriever.from_run(work)


def test_search_refuses_features_holding_a_nan(search_run, tmp_path):
    """The run's own features with one NaN (hash.input: graph would spread it through the kNN graph inputs into
    codes of all zeros): one line naming the file and the row (issue 30, 2)."""
    bad = tmp_path / "nan.h5"
    shutil.copy(search_run / "data" / "features.h5", bad)
    with h5py.File(bad, "r+") as f:
        f["features/image"][5, 3] = np.nan
    assert fails(search_run, "search", "--features", str(bad)) == (f"error: {bad}: NaN or infinite features in row 5")


def test_an_incomplete_index_folder_is_named_with_its_stage(search_run, tmp_path):
    """A kill -9 inside the index stage can leave its folder without index.h5: search named no index and searched
    the 16-bit one instead of the 24-bit one (issue 30, 12); now it names the folder and the stage to rerun."""
    run = tmp_path / "run"
    shutil.copytree(search_run, run, ignore=shutil.ignore_patterns(".dvc", ".git"))
    (run / "data" / "index" / "nrdh-gcn-24" / "image" / "index.h5").unlink()
    assert fails(run, "search", "--id", "digits/0001") == (
        f"error: {Path('data/index/nrdh-gcn-24/image')}: an incomplete index (no index.h5); rerun its stage: dvc "
        "repro index@gcn-24"
    )
