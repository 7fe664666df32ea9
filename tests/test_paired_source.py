"""The generic paired source (``paired``, ``graphhash.data.paired.read_paired``): a tiny random layout written here,
as a folder of ``.npy`` files and as one HDF5 file, gives back the matrices, ids, labels and queries written; labels
from the layout, from a labels file, or none; each bad input is one line naming the file; GCH on unlabelled items is
refused in one line before anything is written; and a whole DVC run of the crossmodal settings on unlabelled pairs."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import new_project, run_in

from graphhash.data.paired import read_paired
from graphhash.data.sources import SOURCES, open_source
from graphhash.errors import GraphhashError
from graphhash.files.features import write_features
from graphhash.params.baselines import BaselinesParams
from graphhash.params.prepare import PrepareParams
from graphhash.pipeline.baselines import baseline_codes
from graphhash.pipeline.prepare import items, prepare

IDS = ["pair/c", "pair/a", "pair/e", "pair/b", "pair/f", "pair/d"]  # the rows' order, not sorted


def tiny_views(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"text": rng.random((6, 3)), "image": rng.standard_normal((6, 4)).astype(np.float32)}


def write_folder(folder: Path, views: dict[str, np.ndarray], ids: list[str] = IDS, **files) -> Path:
    """The folder layout: ``<modality>.npy``, ``ids.txt``, and ``files`` ({name: array or lines})."""
    folder.mkdir(parents=True, exist_ok=True)
    for modality, x in views.items():
        np.save(folder / f"{modality}.npy", x)
    (folder / "ids.txt").write_text("".join(f"{i}\n" for i in ids), encoding="utf-8")
    for name, value in files.items():
        if name.endswith(".npy"):
            np.save(folder / name, value)
        else:
            (folder / name).write_text("".join(f"{line}\n" for line in value), encoding="utf-8")
    return folder


def write_hdf5(path: Path, views: dict[str, np.ndarray], ids: list[str] = IDS, **datasets) -> Path:
    """The HDF5 layout: one root dataset per modality, ``ids`` strings, and ``datasets``."""
    with h5py.File(path, "w") as f:
        for modality, x in views.items():
            f[modality] = x
        f.create_dataset("ids", data=ids, dtype=h5py.string_dtype() if isinstance(ids, list) else None)
        for name, value in datasets.items():
            f.create_dataset(name, data=value, dtype=h5py.string_dtype() if isinstance(value, list) else None)
    return path


def check_rows(source, views: dict[str, np.ndarray]) -> None:
    """Every listed id's vectors are the rows written for it, float32, modalities in sorted name order."""
    listing = source.listing()
    assert listing.ids == sorted(IDS) and source.modalities == ("image", "text") and source.holds_vectors
    for item_id in listing.ids:
        row = IDS.index(item_id)
        image, text = source.vectors(item_id)
        np.testing.assert_array_equal(image, views["image"][row].astype(np.float32))
        np.testing.assert_array_equal(text, views["text"][row].astype(np.float32))


@pytest.mark.parametrize("layout", ["folder", "hdf5"])
def test_the_layout_gives_back_its_rows_by_id_unlabelled_without_labels(tmp_path, layout):
    views = tiny_views()
    path = write_folder(tmp_path / "own", views) if layout == "folder" else write_hdf5(tmp_path / "own.h5", views)
    source = SOURCES["paired"](str(path))
    check_rows(source, views)
    listing = source.listing()
    assert listing.labels.shape == (6, 0) and listing.labels.dtype == bool and listing.classes == []
    assert listing.native_query is None
    assert source.read("pair/a") == views["image"][1].astype(np.float64).tobytes() + views["text"][1].tobytes()


@pytest.mark.parametrize("layout", ["folder", "hdf5"])
def test_the_layouts_own_labels_classes_and_queries(tmp_path, layout):
    views, labels = tiny_views(), np.array([2, 0, 1, 0, 2, 1])
    classes, query = ["cat", "dog", "owl"], ["pair/e", "pair/a"]
    if layout == "folder":
        path = write_folder(tmp_path / "own", views, **{"labels.npy": labels, "classes.txt": classes,
                                                        "query.txt": query})  # fmt: skip
    else:
        path = write_hdf5(tmp_path / "own.h5", views, labels=labels, classes=classes, query=query)
    source = open_source("paired", str(path))
    check_rows(source, views)
    listing = source.listing()
    assert listing.classes == classes
    expected = {"pair/a": 0, "pair/b": 0, "pair/c": 2, "pair/d": 1, "pair/e": 1, "pair/f": 2}
    assert listing.labels.dtype == np.int64 and listing.labels.tolist() == [expected[i] for i in listing.ids]
    assert [i for i, q in zip(listing.ids, listing.native_query, strict=True) if q] == ["pair/a", "pair/e"]


def test_multi_label_rows_without_class_names_are_named_by_their_columns(tmp_path):
    multi = np.array([[1, 0], [0, 1], [1, 1], [0, 0], [1, 0], [0, 1]], dtype=np.uint8)
    listing = SOURCES["paired"](str(write_folder(tmp_path, tiny_views(), **{"labels.npy": multi}))).listing()
    assert listing.classes == ["0", "1"] and listing.labels.dtype == bool
    assert listing.labels[listing.ids.index("pair/e")].tolist() == [True, True]  # row 2
    assert listing.labels[listing.ids.index("pair/b")].tolist() == [False, False]  # row 3


def test_labels_from_a_labels_file_or_none_and_the_split_of_the_query_list(tmp_path):
    """prepare.labels: a CSV over the layout's ids (its own labels.npy set aside), or none; prepare.split: auto takes
    query.txt's ids as the queries and every other item as database and training set."""
    folder = write_folder(tmp_path / "own", tiny_views(), **{"labels.npy": np.zeros(6, dtype=np.int64),
                                                             "query.txt": ["pair/f", "pair/b"]})  # fmt: skip
    csv = tmp_path / "labels.csv"
    csv.write_text("id,label\npair/a,x\npair/b,y\npair/c,x\npair/d,y\npair/e,x\npair/f,y\n", encoding="utf-8")
    listing = items(SOURCES["paired"](str(folder)), PrepareParams(source="paired", path=str(folder), labels=str(csv)))
    assert listing.ids == sorted(IDS) and listing.classes == ["x", "y"] and listing.labels.tolist() == [0, 1] * 3
    manifest = prepare(PrepareParams(source="paired", path=str(folder), labels="none", split="auto"))
    assert manifest.source == "paired" and manifest.modalities == ["image", "text"] and manifest.classes == []
    assert manifest.labels.shape == (6, 0)
    assert [i for i, q in zip(manifest.ids, manifest.split.query, strict=True) if q] == ["pair/b", "pair/f"]
    assert manifest.split.database.tolist() == (~manifest.split.query).tolist() == manifest.split.train.tolist()


def garbage(path: Path) -> None:
    path.write_bytes(b"not an array\n")


def pickled(path: Path) -> None:
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)


def truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-8])


FOLDER_ERRORS = [
    (lambda f: (f / "ids.txt").unlink(), r"ids\.txt: not found"),
    (lambda f: np.save(f / "text.npy", np.ones((5, 3))), r"text\.npy: 5 rows of 3 features, but .*ids\.txt lists 6"),
    (lambda f: np.save(f / "text.npy", np.ones(6)), r"text\.npy: expected a 2-d feature matrix, found shape \(6,\)"),
    (lambda f: np.save(f / "text.npy", np.ones((6, 0))), r"text\.npy: 6 rows of 0 features"),
    (lambda f: np.save(f / "image.npy", np.where(np.eye(6, 4), np.nan, 1)), r"image\.npy: NaN or infinite .* row 0"),
    (lambda f: np.save(f / "image.npy", np.full((6, 4), "a")), r"image\.npy: not a numeric matrix"),
    (lambda f: garbage(f / "image.npy"), r"image\.npy: not a \.npy array \(no NumPy header\)"),
    (lambda f: truncated(f / "image.npy"), r"image\.npy: cannot read the \.npy array: damaged header or data"),
    (lambda f: pickled(f / "image.npy"), r"image\.npy: cannot read the \.npy array: it holds Python objects"),
    (lambda f: write_folder(f, {}, ids=[*IDS[:5], "pair/a"]), r"ids\.txt: 'pair/a' .* twice \(line 2 and line 6"),
    (lambda f: write_folder(f, {}, ids=[*IDS[:2], "", *IDS[2:]]), r"ids\.txt: line 3 is empty"),
    (lambda f: (f / "ids.txt").write_bytes(b"caf\xe9\n"), r"ids\.txt:1: not UTF-8 text"),
    (lambda f: np.save(f / "labels.npy", np.zeros(5, dtype=int)), r"labels\.npy: 5 rows, but .*ids\.txt lists 6"),
    (lambda f: np.save(f / "labels.npy", np.full(6, 0.5)), r"labels\.npy: expected \(N,\) class numbers"),
    (lambda f: np.save(f / "labels.npy", -np.ones(6, dtype=int)), r"labels\.npy: expected \(N,\) class numbers"),
    (lambda f: np.save(f / "labels.npy", np.full((6, 2), 2)), r"labels\.npy: expected .* or an \(N, L\) 0/1 matrix"),
    (
        lambda f: write_folder(f, {}, **{"labels.npy": np.arange(6), "classes.txt": ["a", "b"]}),
        r"classes\.txt: names 2 classes, but .*labels\.npy has class 5",
    ),
    (
        lambda f: write_folder(f, {}, **{"labels.npy": np.eye(6, 3), "classes.txt": ["a", "b"]}),
        r"classes\.txt: names 2 classes, but .*labels\.npy has 3 columns",
    ),
    (
        lambda f: write_folder(f, {}, **{"labels.npy": np.arange(6), "classes.txt": list("abcdea")}),
        r"classes\.txt: 1 class names are listed twice",
    ),
    (lambda f: write_folder(f, {}, **{"classes.txt": ["a"]}), r"classes\.txt: names the classes of labels, but"),
    (lambda f: write_folder(f, {}, **{"query.txt": ["pair/z"]}), r"query\.txt: line 1, 'pair/z', is not an id of"),
    (lambda f: write_folder(f, {}, **{"query.txt": ["pair/a", "pair/a"]}), r"query\.txt: 'pair/a' is listed twice"),
    (lambda f: (f / "query.txt").write_text("\n"), r"query\.txt: lists no ids"),
    (lambda f: [(f / f"{m}.npy").unlink() for m in ("image", "text")], r"own: no <modality>\.npy files"),
]


@pytest.mark.parametrize(("change", "message"), FOLDER_ERRORS)
def test_a_bad_folder_layout_is_one_line_naming_the_file(tmp_path, change, message):
    folder = write_folder(tmp_path / "own", tiny_views())
    change(folder)
    with pytest.raises(GraphhashError, match=message) as info:
        SOURCES["paired"](str(folder))
    assert "\n" not in str(info.value)


HDF5_ERRORS = [
    (lambda p: write_hdf5(p, tiny_views(), ids=IDS[:5]), r"own\.h5: image: 6 rows of 4 features, but .* lists 5 ids"),
    (lambda p: write_hdf5(p, tiny_views(), ids=[*IDS[:5], "pair/c"]), r"own\.h5: ids: 'pair/c' .* \(row 0 and row 5"),
    (lambda p: write_hdf5(p, tiny_views(), query=["pair/q"]), r"own\.h5: query: row 0, 'pair/q', is not an id"),
    (lambda p: write_hdf5(p, tiny_views(), labels=np.zeros(4, dtype=int)), r"own\.h5: labels: 4 rows, but"),
    (lambda p: write_hdf5(p, {"image": np.ones((6, 2, 2))}), r"own\.h5: image: expected a 2-d feature matrix"),
    (lambda p: write_hdf5(p, {"image": np.full((6, 2), np.inf)}), r"own\.h5: image: NaN or infinite features"),
    (lambda p: write_hdf5(p, {}), r"own\.h5: no feature datasets"),
    (lambda p: h5py.File(p, "w").close(), r"own\.h5: no dataset ids"),
    (lambda p: write_hdf5(p, tiny_views(), ids=np.arange(6)), r"own\.h5: ids: expected a 1-d dataset of strings"),
    (lambda p: h5py.File(p, "a").create_group("extra"), r"own\.h5: extra is not a dataset"),
    (lambda p: garbage(p), r"own\.h5: not an HDF5 file h5py can read"),
]


@pytest.mark.parametrize(("change", "message"), HDF5_ERRORS)
def test_a_bad_hdf5_layout_is_one_line_naming_the_file_and_dataset(tmp_path, change, message):
    path = write_hdf5(tmp_path / "own.h5", tiny_views())
    change(path)
    with pytest.raises(GraphhashError, match=message) as info:
        read_paired(path)
    assert "\n" not in str(info.value)


def test_a_path_neither_folder_nor_hdf5_is_one_line(tmp_path):
    (tmp_path / "image.npy").write_bytes(b"")
    for path in (tmp_path / "absent", tmp_path / "image.npy"):
        with pytest.raises(GraphhashError, match=r"^prepare\.path: .* is neither a folder of <modality>\.npy files "
                                                 r"nor an HDF5 file \(\.h5, \.hdf5\)$"):  # fmt: skip
            SOURCES["paired"](str(path))


def test_gch_on_unlabelled_items_is_refused_in_one_line_before_any_method_is_fitted(tmp_path):
    views, query = tiny_views(), np.arange(6) < 2
    features = tmp_path / "features.h5"
    write_features(features, [{m: x.astype(np.float32) for m, x in views.items()}], dims={"image": 4, "text": 3},
                   ids=IDS, labels=np.zeros((6, 0), dtype=bool), masks={"query": query, "database": ~query,
                   "train": ~query}, attrs={"source": "paired"})  # fmt: skip
    with pytest.raises(GraphhashError, match=r"^baselines\.methods: gch needs labels, but the items of .*features\.h5 "
                                             r"have none \(prepare\.labels is none, or source 'paired' has no labels "
                                             r"of its own\)") as info:  # fmt: skip
        baseline_codes(features, 8, BaselinesParams(methods=["lsh", "gch"]), tmp_path / "codes")
    assert "\n" not in str(info.value) and not (tmp_path / "codes").exists()  # lsh, listed first, wrote nothing


def test_a_whole_crossmodal_run_on_unlabelled_pairs(tmp_path):
    """``dvc repro`` of the crossmodal settings on a paired layout without labels: every stage runs; the evaluate
    stage writes the label-free metrics only, in every direction, and the summary of the directions across."""
    rng = np.random.default_rng(3)
    ids = [f"pair/{i:03d}" for i in range(120)]
    folder = write_folder(tmp_path / "pairs", {"image": rng.random((120, 12)), "text": rng.random((120, 5))}, ids=ids)
    run = {"prepare": {"source": "paired", "path": str(folder), "query_size": 20}, "codes": {"bits": [8]},
           "graph": {"nodes": 6, "rho": 0.2}, "represent": {"steps": 20, "graphs_per_step": 8},
           "hash": {"input": "features", "similarity": 0.0, "gamma": 0.0, "dropout": 0.2, "steps": 20,
                    "batch_size": 32},
           "baselines": {"methods": ["lsh", "cmfh"], "cmfh": {"iterations": 5}},
           "evaluate": {"map_at": [10], "neighbours": 10}}  # fmt: skip
    work = new_project(tmp_path / "repo", run)
    run_in(work, "dvc", "repro", "-q")
    manifest = json.loads((work / "data" / "manifest.json").read_text())
    assert manifest["classes"] == [] and manifest["counts"] == {"items": 120, "query": 20, "database": 100,
                                                                "train": 100}  # fmt: skip
    metrics = json.loads((work / "metrics" / "metrics.json").read_text())
    assert set(metrics) == {"lsh", "cmfh", "nrdh-gcn"}  # no cosine row without labels
    ways = {"image->text", "text->image", "image->image", "text->text"}
    assert set(metrics["nrdh-gcn"]["8"]) == ways
    assert all(set(found) == {"nmap@10", "recall@10"} for found in metrics["cmfh"]["8"].values())
    summary = json.loads((work / "metrics" / "summary.json").read_text())
    assert summary == {way: {"nmap@10": {"8": metrics["nrdh-gcn"]["8"][way]["nmap@10"]}}
                       for way in ("image->text", "text->image")}  # fmt: skip
    assert sorted(p.name for p in (work / "data" / "codes").rglob("*-8-*.h5")) == [
        f"{m}-8-{x}.h5" for m in ("cmfh", "lsh", "nrdh-gcn") for x in ("image", "text")
    ]
