"""Paired feature-only data (graphhash.data.paired) and its sources (wiki, mirflickr_tags): the readers on files
written here as the datasets publish them, their one-line errors, the sources' listings and items, and the real
datasets when ../shared is present."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io
import scipy.sparse

from graphhash.data.paired import PairedSet, read_mirflickr_tags, read_wiki
from graphhash.data.sources.paired import MirflickrTagsSource, WikiSource
from graphhash.errors import GraphhashError

SHARED_WIKI = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "wiki"


def write_wiki(folder: Path, train: int = 6, test: int = 3, **overrides) -> dict[str, np.ndarray]:
    """A Wiki-shaped folder: the .mat with I_tr/I_te/T_tr/T_te, the two .list files."""
    rng = np.random.default_rng(0)
    arrays = {"I_tr": rng.random((train, 5)), "I_te": rng.random((test, 5)),
              "T_tr": rng.random((train, 3)), "T_te": rng.random((test, 3))}  # fmt: skip
    arrays.update(overrides)
    scipy.io.savemat(folder / "raw_features.mat", arrays)
    for name, count, start in (("trainset_txt_img_cat.list", train, 0), ("testset_txt_img_cat.list", test, 100)):
        lines = [f"t{start + i}  i{start + i}  {1 + (start + i) % 10}" for i in range(count)]
        (folder / name).write_text("\n".join(lines) + "\n")
    return arrays


def test_wiki_reads_train_then_test_pairs_with_their_categories(tmp_path):
    arrays = write_wiki(tmp_path)
    found = read_wiki(tmp_path)
    np.testing.assert_array_equal(found.views["image"], np.concatenate([arrays["I_tr"], arrays["I_te"]]))
    np.testing.assert_array_equal(found.views["text"], np.concatenate([arrays["T_tr"], arrays["T_te"]]))
    assert found.ids[:2] == ["t0/i0", "t1/i1"] and found.ids[6] == "t100/i100"
    assert found.labels.tolist() == [0, 1, 2, 3, 4, 5, 0, 1, 2]  # categories 1-10 stored 0-9
    assert found.query.tolist() == [False] * 6 + [True] * 3
    assert found.classes == [str(number) for number in range(1, 11)]  # no categories.list: their numbers
    (tmp_path / "categories.list").write_text("\n".join(f"c{i}" for i in range(10)) + "\n")
    assert read_wiki(tmp_path).classes == [f"c{i}" for i in range(10)]


def test_the_wiki_source_lists_pairs_by_id_with_the_test_pairs_as_queries(tmp_path):
    """Sorted ids, each item's label, the test pairs as its own split, and each item's two vectors; an item's bytes
    (the manifest's digest) change with either vector and with its label."""
    arrays = write_wiki(tmp_path)
    source = WikiSource(str(tmp_path))
    listing = source.listing()
    assert source.modalities == ("image", "text") and source.holds_vectors
    assert listing.ids == sorted(listing.ids) and len(listing.ids) == 9
    row = {f"t{n}/i{n}": r for r, n in enumerate([*range(6), 100, 101, 102])}  # the files' row of each id
    for item_id, label, query in zip(listing.ids, listing.labels, listing.native_query, strict=True):
        r = row[item_id]
        image, text = source.vectors(item_id)
        np.testing.assert_array_equal(image, np.concatenate([arrays["I_tr"], arrays["I_te"]])[r].astype(np.float32))
        np.testing.assert_array_equal(text, np.concatenate([arrays["T_tr"], arrays["T_te"]])[r].astype(np.float32))
        assert label == int(item_id.split("/")[0][1:]) % 10 and query == (r >= 6)
    before = source.read("t1/i1")
    write_wiki(tmp_path, T_tr=arrays["T_tr"] + np.eye(6, 3))
    assert WikiSource(str(tmp_path)).read("t1/i1") != before
    with pytest.raises(GraphhashError, match=r"item t9/i9: no such item"):
        source.vectors("t9/i9")
    with pytest.raises(GraphhashError, match=r"prepare\.path: .* is not a folder \(the wiki dataset's folder\)"):
        WikiSource(str(tmp_path / "raw_features.mat"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda folder: (folder / "raw_features.mat").unlink(), r"raw_features\.mat: not found"),
        (lambda folder: (folder / "testset_txt_img_cat.list").unlink(), r"testset_txt_img_cat\.list: not found"),
        (lambda folder: write_wiki(folder, I_te=np.full((3, 5), np.nan)), r"I_te: NaN or infinite features"),
        (lambda folder: write_wiki(folder, T_tr=np.ones((5, 3))), r"T_tr has 5 rows, but trainset.* lists 6"),
        (lambda folder: (folder / "trainset_txt_img_cat.list").write_text("t0 i0 11\n"), r":1: expected"),
        # issue 30, 11: each of these was a traceback
        (lambda folder: (folder / "raw_features.mat").write_bytes(b""), r"raw_features\.mat: an empty file"),
        (
            lambda folder: write_wiki(folder, I_tr=np.ones((6, 128)), I_te=np.ones((3, 127))),
            r"I_te has 127 columns, but I_tr has 128: both parts' image features must match",
        ),
        (
            lambda folder: write_wiki(folder, T_tr=np.array([["a", "b", "c"]] * 6)),
            r"raw_features\.mat: T_tr: not a numeric matrix \(it holds str32 values\)",
        ),
        (
            lambda folder: (folder / "testset_txt_img_cat.list").write_bytes(b"t100 i100 1\nt101 caf\xe9 2\n"),
            r"testset_txt_img_cat\.list:2: not UTF-8 text \(byte 0xe9\)",
        ),
        (
            lambda folder: write_wiki(folder, T_te=np.ones((3, 3)) * (1 + 1j)),
            r"T_te: complex-valued features \(dtype complex128\)",
        ),
    ],
)
def test_wiki_bad_files_are_one_line_naming_the_file(tmp_path, change, message):
    write_wiki(tmp_path)
    change(tmp_path)
    with pytest.raises(GraphhashError, match=message) as info:
        read_wiki(tmp_path)
    assert "\n" not in str(info.value)


def test_paired_set_refuses_modalities_of_different_lengths():
    with pytest.raises(GraphhashError, match=r"the modalities \(image 3, text 2\)"):
        PairedSet({"image": np.zeros((3, 2)), "text": np.zeros((2, 2))}, np.zeros(3), ["a", "b", "c"],
                  np.zeros(3, dtype=bool), ["c"])  # fmt: skip
    with pytest.raises(GraphhashError, match=r"1 item ids are listed twice"):
        PairedSet({"image": np.zeros((3, 2))}, np.zeros(3), ["a", "b", "a"], None, ["c"])


@pytest.mark.skipif(not SHARED_WIKI.is_dir(), reason=f"{SHARED_WIKI} not found (the Wiki features live in ../shared)")
def test_the_real_wiki_dataset_has_its_published_shape():
    found = read_wiki(SHARED_WIKI)
    assert found.views["image"].shape == (2866, 128) and found.views["text"].shape == (2866, 10)
    assert int(found.query.sum()) == 693 and sorted(set(found.labels.tolist())) == list(range(10))
    np.testing.assert_allclose(found.views["text"].sum(axis=1), 1.0, atol=1e-6)  # topic proportions
    assert len(set(found.ids)) == 2866


SHARED_MIRFLICKR = SHARED_WIKI.parent / "mirflickr25k-tags"


def write_mirflickr(folder: Path, items: int = 50, labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    tags = (rng.random((items, 12)) < 0.3).astype(np.uint8)
    if labels is None:  # each item at least one label, as in the dataset
        labels = ((rng.random((items, 4)) < 0.4) | (np.arange(4) == np.arange(items)[:, None] % 4)).astype(np.uint8)
    scipy.io.savemat(folder / "mirflickr25k-yall.mat", {"YAll": tags})
    scipy.io.savemat(folder / "mirflickr25k-lall.mat", {"LAll": labels})
    return tags, labels


def test_mirflickr_tags_are_one_modality_with_multi_labels_and_no_split(tmp_path):
    tags, labels = write_mirflickr(tmp_path)
    found = read_mirflickr_tags(tmp_path)
    np.testing.assert_array_equal(found.views["tags"], tags)
    assert found.labels.dtype == bool and (found.labels == labels.astype(bool)).all()
    assert found.query is None and found.classes == ["label-00", "label-01", "label-02", "label-03"]
    source = MirflickrTagsSource(str(tmp_path))
    listing = source.listing()
    assert source.modalities == ("tags",) and listing.native_query is None
    assert listing.ids[:2] == ["mirflickr/00", "mirflickr/01"] and listing.labels.shape == (50, 4)
    np.testing.assert_array_equal(source.vectors("mirflickr/07")[0], tags[7].astype(np.float32))


def test_mirflickr_bad_files_are_one_line(tmp_path):
    write_mirflickr(tmp_path, labels=np.full((49, 4), 1, dtype=np.uint8))
    with pytest.raises(GraphhashError, match=r"LAll must be a 0/1 matrix with a row for each of the 50 items"):
        read_mirflickr_tags(tmp_path)
    write_mirflickr(tmp_path, labels=np.full((50, 4), 2, dtype=np.uint8))
    with pytest.raises(GraphhashError, match=r"LAll must be a 0/1 matrix"):
        read_mirflickr_tags(tmp_path)
    labels = np.eye(50, 4, dtype=np.uint8)  # rows 4 to 49 have no label (issue 30, 11)
    write_mirflickr(tmp_path, labels=labels)
    with pytest.raises(GraphhashError, match=r"LAll: 46 items have no label \(the first: row 4\)"):
        read_mirflickr_tags(tmp_path)
    (tmp_path / "mirflickr25k-yall.mat").unlink()
    with pytest.raises(GraphhashError, match=r"mirflickr25k-yall\.mat: not found"):
        read_mirflickr_tags(tmp_path)


def test_mirflickr_tags_stored_as_a_sparse_matrix_read_as_the_dense_one(tmp_path):
    """YAll saved sparse (as MATLAB does for a sparse matrix): the same features as dense (issue 30, 11)."""
    tags, _ = write_mirflickr(tmp_path)
    scipy.io.savemat(tmp_path / "mirflickr25k-yall.mat", {"YAll": scipy.sparse.csr_matrix(tags)})
    np.testing.assert_array_equal(read_mirflickr_tags(tmp_path).views["tags"], tags)


@pytest.mark.skipif(not SHARED_MIRFLICKR.is_dir(), reason=f"{SHARED_MIRFLICKR} not found (it lives in ../shared)")
def test_the_real_mirflickr_tags_have_their_published_shape():
    found = read_mirflickr_tags(SHARED_MIRFLICKR)
    assert found.views["tags"].shape == (20015, 1386) and found.labels.shape == (20015, 24)
    per_item = found.labels.sum(axis=1)
    assert per_item.min() == 1 and per_item.max() == 14  # the README: 1-14 labels per item
    assert found.query is None
