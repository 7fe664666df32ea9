"""Your own collection (issue 31): image trees of any depth, with labels from class folders, from a labels file, or
none; each bad input one line naming the file or the key, and no manifest written."""

from __future__ import annotations

import os

import numpy as np
import pytest

from graphhash.data.labels import labelled, read_labels_file
from graphhash.data.sources import open_source
from graphhash.errors import GraphhashError
from graphhash.params.prepare import PrepareParams
from graphhash.pipeline.prepare import prepare

PHOTOS = ["IMG_0001.jpg", "2024/01/IMG_0002.JPG", "2024/01/IMG_0003.png", "2024/02/deep/er/IMG_0004.webp",
          "2023/IMG_0005.jpeg", "notes.txt", "2024/.hidden/IMG_0006.jpg", "2024/._IMG_0002.JPG",
          ".DS_Store"]  # fmt: skip


def expected_images(root) -> list[str]:
    """The visible image files under ``root`` by a plain walk: no dotted name on the way, an image extension."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if not name.startswith(".") and name.lower().endswith((".jpg", ".jpeg", ".png", ".bmp", ".webp")):
                found.append(os.path.relpath(os.path.join(folder, name), root).replace(os.sep, "/"))
    return sorted(found)


def test_a_flat_tree_without_labels_lists_every_image_at_any_depth(tmp_path, make_tree):
    root = make_tree(tmp_path / "photos", PHOTOS)
    listing = open_source("folder", str(root)).unlabelled()
    assert listing.ids == expected_images(root) == ["2023/IMG_0005.jpeg", "2024/01/IMG_0002.JPG",
                                                    "2024/01/IMG_0003.png", "2024/02/deep/er/IMG_0004.webp",
                                                    "IMG_0001.jpg"]  # fmt: skip
    assert listing.labels.shape == (5, 0) and listing.classes == []
    assert listing.left_out == {"not ending in .jpg, .jpeg, .png, .bmp, .webp": 1}  # notes.txt; hidden: unseen


def test_class_folders_hold_images_at_any_depth(tmp_path, make_tree):
    root = make_tree(tmp_path / "photos", ["cats/a.jpg", "cats/2024/b/c.png", "dogs/d.jpg", "dogs/x/y/z/e.jpg"])
    listing = open_source("folder", str(root)).listing()
    assert listing.ids == ["cats/2024/b/c.png", "cats/a.jpg", "dogs/d.jpg", "dogs/x/y/z/e.jpg"]
    assert listing.classes == ["cats", "dogs"] and listing.labels.tolist() == [0, 0, 1, 1]


def test_a_folder_without_class_folders_names_the_key_that_fixes_it(tmp_path, make_tree):
    root = make_tree(tmp_path / "photos", ["a.jpg", "b.jpg"])
    with pytest.raises(GraphhashError, match=r"no class folders \(expected one sub-folder per class\); for images "
                       r"without classes set prepare.labels: none"):  # fmt: skip
        prepare(PrepareParams(source="folder", path=str(root)))


@pytest.mark.parametrize("files, why", [([], "holds no files"), (["a.txt", "b/c.csv"], "holds 2 files, none ending")])
def test_an_empty_tree_or_one_without_images_is_one_line(tmp_path, make_tree, files, why):
    root = tmp_path / "photos"
    root.mkdir()
    make_tree(root, files)
    with pytest.raises(GraphhashError, match=f"^{root}: {why}"):
        prepare(PrepareParams(source="folder", path=str(root), labels="none"))


def test_prepare_without_labels_draws_sizes_from_every_item(tmp_path, make_tree):
    root = make_tree(tmp_path / "photos", [f"{month:02d}/IMG_{i:03d}.jpg" for month in (1, 2) for i in range(25)])
    manifest = prepare(PrepareParams(source="folder", path=str(root), labels="none", query_size=0.2, train="sample",
                                     train_size=10))  # fmt: skip
    assert manifest.labels.shape == (50, 0) and manifest.classes == []
    assert (manifest.split.query.sum(), manifest.split.database.sum(), manifest.split.train.sum()) == (10, 40, 10)
    assert not (manifest.split.train & ~manifest.split.database).any()
    assert manifest.ids == expected_images(root)


def write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


def test_a_labels_file_gives_single_labels_and_leaves_unlisted_files_out(tmp_path, make_tree, caplog):
    root = make_tree(tmp_path / "photos", ["a.jpg", "x/b.jpg", "x/y/c.png", "d.jpg", "e.jpg"])
    labels = write(tmp_path / "labels.csv", "path,label\n# the beach trip\nx/b.jpg,beach\n\na.jpg, city \n"
                                            "x/y/c.png,beach\nd.jpg,city\n")  # fmt: skip
    with caplog.at_level("WARNING", logger="graphhash"):
        manifest = prepare(PrepareParams(source="folder", path=str(root), labels=str(labels), query_size=1))
    assert manifest.ids == ["a.jpg", "d.jpg", "x/b.jpg", "x/y/c.png"] and manifest.classes == ["beach", "city"]
    assert manifest.labels.tolist() == [1, 1, 0, 0]
    assert manifest.left_out == {f"not listed in {labels}": 1}
    assert f"prepare: 1 files left out: not listed in {labels}" in caplog.text


def test_a_tsv_with_several_labels_per_item_gives_a_label_matrix(tmp_path, make_tree):
    root = make_tree(tmp_path / "photos", ["a.jpg", "b.jpg", "c.jpg"])
    labels = write(tmp_path / "labels.tsv", "a.jpg\tdog;beach\nb.jpg\tbeach\nc.jpg\t\n")
    listing = labelled(open_source("folder", str(root)).unlabelled(), read_labels_file(labels), str(root))
    assert listing.classes == ["beach", "dog"]
    np.testing.assert_array_equal(listing.labels, [[True, True], [True, False], [False, False]])


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "a.jpg,cat\nmissing.jpg,dog\nb/gone.png,dog\n",
            r"2 of its 3 rows name no item under .* \(the first, row 2: "
            r"'missing.jpg'\)",
        ),
        ("a.jpg,cat\nb.jpg,dog\na.jpg,cat\n", r"'a.jpg' is listed twice \(rows 1 and 3\)"),
        (
            "a.jpg,cat,dog\n",
            r"row 1 has 3 fields, expected 2 \(the item's id, then its labels; several go in one "
            r"field, separated by ';'\)",
        ),
        ("a.jpg,cat\nb.jpg,\n", r"row 2 \('b.jpg'\) has no label"),
        ("path,label\n", "lists no items"),
    ],
    ids=["missing-files", "twice", "labels-as-fields", "no-label", "empty"],
)
def test_a_bad_labels_file_is_one_line_naming_it_and_nothing_is_written(tmp_path, make_tree, text, message):
    root = make_tree(tmp_path / "photos", ["a.jpg", "b.jpg"])
    labels = write(tmp_path / "labels.csv", text)
    with pytest.raises(GraphhashError, match=f"^{labels}: {message}") as info:
        prepare(PrepareParams(source="folder", path=str(root), labels=str(labels)))
    assert "\n" not in str(info.value)


def test_prepare_labels_must_name_a_csv_or_tsv_file(tmp_path):
    with pytest.raises(ValueError, match=r"must be folders, none, or a labels file ending in \.csv or \.tsv"):
        PrepareParams(labels="labels.json")
    with pytest.raises(GraphhashError, match=r"^prepare.labels: '.*nowhere.csv' is not a file"):
        prepare(PrepareParams(source="folder", path=str(tmp_path), labels=str(tmp_path / "nowhere.csv")))


def test_labels_none_drops_a_sources_own_labels(tmp_path):
    """Any source can be run without labels: the digits, unlabelled, count their sizes in all."""
    manifest = prepare(PrepareParams(labels="none", query_size=100))
    assert manifest.labels.shape == (1797, 0) and manifest.split.query.sum() == 100


def test_a_flat_folder_of_unlabelled_photos_runs_end_to_end_trained_on_a_sample(tmp_path, make_tree):
    """`dvc repro` on a tree of unlabelled images (prepare.labels: none), trained on a sample of the database: every
    database item is hashed and indexed, evaluate writes the label-free metrics only, and `graphhash search` finds
    an item of the run first by its own image."""
    import json

    import h5py
    from conftest import new_project, run_in

    photos = make_tree(tmp_path / "photos", [f"{year}/{month:02d}/IMG_{i:03d}.jpg" for year in (2023, 2024)
                                             for month in (1, 2, 3) for i in range(10)])  # fmt: skip
    work = new_project(tmp_path / "repo", {
        "prepare": {"source": "folder", "path": str(photos), "labels": "none", "query_size": 6, "train": "sample",
                    "train_size": 30},
        "extract": {"image_size": 32, "batch_size": 20},
        "codes": {"bits": [8]},
        "represent": {"steps": 20, "graphs_per_step": 8},
        "hash": {"steps": 20, "batch_size": 16},
        "baselines": {"methods": ["itq"]},
        "evaluate": {"map_at": [10], "neighbours": 5, "figure_queries": 2},
    })  # fmt: skip
    run_in(work, "dvc", "repro", "-q")
    manifest = json.loads((work / "data" / "manifest.json").read_text())
    assert manifest["counts"] == {"items": 60, "query": 6, "database": 54, "train": 30}
    assert manifest["ids"] == sorted(manifest["ids"]) and manifest["ids"][0] == "2023/01/IMG_000.jpg"
    with h5py.File(work / "data" / "index" / "nrdh-gcn-8" / "image" / "index.h5", "r") as f:
        assert len(f["ids"]) == 54  # every database item, not only the 30 trained on
    metrics = json.loads((work / "metrics" / "metrics.json").read_text())
    assert set(metrics) == {"nrdh-gcn", "itq"} and set(metrics["nrdh-gcn"]["8"]) == {"nmap@10", "recall@10"}
    assert json.loads((work / "metrics" / "summary.json").read_text()).keys() == {"nmap@10"}
    assert sorted(p.name for p in (work / "metrics" / "retrieval").iterdir()) == ["itq-8.png", "nrdh-gcn-8.png"]
    item = next(i for i, database in zip(manifest["ids"], manifest["database"], strict=True) if database)
    shown = run_in(work, "graphhash", "search", "--id", item, "--json", "--k", "3")
    found = json.loads(shown[shown.index("{") : shown.rindex("}") + 1])  # stdout's JSON, before the log line
    (result,) = found["results"]
    assert result["hits"][0]["id"] == item and result["hits"][0]["distance"] == 0
    assert all(hit["relevant"] is None for hit in result["hits"])  # no labels: no relevance to show
    # a copy of a photo of the database is not added again; a new photo is, under its path as named
    import shutil

    (work / "inbox").mkdir()
    shutil.copy(photos / item, work / "inbox" / "copy.jpg")
    from PIL import Image

    Image.open(photos / item).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(work / "inbox" / "flipped.jpg")
    added = run_in(work, "graphhash", "add", "inbox/")
    assert f"skipped: inbox/copy.jpg: already in the database as {item!r} (same content)" in added
    assert "added 1 items" in added
