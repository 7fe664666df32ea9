"""The prepare stage: manifest content, subsampling, content digest, and the manifest file round trip."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import CIFAR_CLASSES, REPO, cifar_paths, noise_image, save_image
from sklearn.datasets import load_digits

from graphhash.errors import GraphhashError
from graphhash.files.manifest import Manifest
from graphhash.params.prepare import PrepareParams
from graphhash.pipeline.prepare import prepare

CLASSES = ["cow", "hen", "pig"]
PER_CLASS = 6
FOLDER_IDS = sorted(f"{cls}/{i}.png" for cls in CLASSES for i in range(PER_CLASS))


def params(path="", **kwargs) -> PrepareParams:
    """The prepare section for a folder at ``path`` with one query per class; other keys take their defaults."""
    return PrepareParams(**({"source": "folder", "path": str(path), "query_size": 1} | kwargs))


@pytest.fixture
def folder(tmp_path, make_tree):
    return make_tree(tmp_path / "farm", FOLDER_IDS)


def per_class(manifest: Manifest, mask: np.ndarray) -> list[int]:
    return np.bincount(manifest.labels[mask], minlength=len(manifest.classes)).tolist()


def test_prepare_folder(folder):
    """Every item is listed with its class; query_size per class are queries, the rest database = train."""
    m = prepare(params(folder, query_size=2))
    assert m.source == "folder" and m.path == str(folder)
    assert m.ids == FOLDER_IDS and len(m) == len(FOLDER_IDS)
    assert m.classes == CLASSES
    assert [m.classes[label] for label in m.labels] == [i.split("/")[0] for i in m.ids]
    assert per_class(m, m.split.query) == [2, 2, 2]
    assert per_class(m, m.split.database) == [4, 4, 4]
    assert np.array_equal(m.split.train, m.split.database)
    assert re.fullmatch(r"[0-9a-f]{64}", m.content_sha256)


def test_prepare_digits():
    """Digits: all 1,797 items with scikit-learn's labels, 20 queries per class, the rest the database."""
    m = prepare(params(source="digits", query_size=20))
    assert len(m) == 1797
    assert np.array_equal(m.labels, load_digits().target)
    assert per_class(m, m.split.query) == [20] * 10
    assert int(m.split.database.sum()) == 1797 - 200
    assert not (m.split.query & m.split.database).any()


def test_prepare_is_deterministic(folder):
    """Equal params give equal manifests; another seed gives another split."""
    a, b = prepare(params(folder, seed=3)), prepare(params(folder, seed=3))
    assert a.ids == b.ids and np.array_equal(a.split.query, b.split.query)
    assert a.content_sha256 == b.content_sha256
    assert any(not np.array_equal(a.split.query, prepare(params(folder, seed=s)).split.query) for s in (4, 5))


def test_limit_per_class_caps_each_class(folder):
    """limit_per_class keeps that many items of each class, a seeded subset of the full listing, in id order."""
    m = prepare(params(folder, limit_per_class=4))
    assert per_class(m, np.ones(len(m), bool)) == [4, 4, 4]
    assert set(m.ids) <= set(FOLDER_IDS) and m.ids == sorted(m.ids)
    assert m.ids == prepare(params(folder, limit_per_class=4)).ids
    assert [m.classes[label] for label in m.labels] == [i.split("/")[0] for i in m.ids]


def test_limit_above_class_size_keeps_everything(folder):
    """A limit larger than every class keeps all items."""
    assert prepare(params(folder, limit_per_class=PER_CLASS + 1)).ids == FOLDER_IDS


@pytest.fixture
def cifar_big(tmp_path, make_tree):
    """A CIFAR-10 layout with 5 train and 3 test items per class."""
    return make_tree(tmp_path / "cifar", cifar_paths(5, 3))


def test_cifar10_native_split_and_limit_per_part(cifar_big):
    """With split=auto the test/ items are the queries, and the limit caps train/ and test/ separately."""
    full = prepare(params(cifar_big, source="cifar10"))
    assert np.array_equal(full.split.query, [i.startswith("test/") for i in full.ids])
    assert full.classes == list(CIFAR_CLASSES)

    m = prepare(params(cifar_big, source="cifar10", limit_per_class=2))
    is_test = np.array([i.startswith("test/") for i in m.ids])
    assert per_class(m, is_test) == [2, 2, 2]
    assert per_class(m, ~is_test) == [2, 2, 2]
    assert np.array_equal(m.split.query, is_test)
    assert np.array_equal(m.split.database, ~is_test)


def test_cifar10_random_split_limits_whole_classes(cifar_big):
    """With split=random the native split is ignored: the limit caps whole classes and queries are drawn."""
    m = prepare(params(cifar_big, source="cifar10", split="random", limit_per_class=2, query_size=1))
    assert per_class(m, np.ones(len(m), bool)) == [2, 2, 2]
    assert per_class(m, m.split.query) == [1, 1, 1]


def test_a_validation_run_leaves_the_test_queries_out_and_draws_its_own(cifar_big):
    """prepare.validation_size: the test queries (CIFAR-10's test/ items) are in no part of the manifest; the
    queries are validation_size training items per class, out of the database and the training set; nothing else
    changes (the other items, their labels and order)."""
    test = prepare(params(cifar_big, source="cifar10"))
    m = prepare(params(cifar_big, source="cifar10", validation_size=2))
    assert m.ids == [i for i in test.ids if i.startswith("train/")]
    assert np.array_equal(m.labels, test.labels[~test.split.query])
    assert per_class(m, m.split.query) == [2, 2, 2] and per_class(m, m.split.database) == [3, 3, 3]
    assert not (m.split.query & (m.split.database | m.split.train)).any()
    assert np.array_equal(m.split.train, m.split.database)
    again = prepare(params(cifar_big, source="cifar10", validation_size=2))
    assert np.array_equal(again.split.query, m.split.query)  # seeded
    other = prepare(params(cifar_big, source="cifar10", validation_size=2, seed=1))
    assert not np.array_equal(other.split.query, m.split.query)


def test_a_validation_run_of_a_random_split_and_of_a_disjoint_training_set(folder):
    """Drawn test queries are left out the same way; with train: disjoint the validation queries come from the
    database, and the training set stays disjoint from both."""
    test = prepare(params(folder, query_size=1))
    m = prepare(params(folder, query_size=1, validation_size=0.4))
    assert m.ids == [i for i, q in zip(test.ids, test.split.query, strict=True) if not q]
    assert per_class(m, m.split.query) == [2, 2, 2]  # 40% of each class's 5 remaining items
    disjoint = prepare(params(folder, query_size=1, train="disjoint", train_size=2, validation_size=1))
    assert per_class(disjoint, disjoint.split.train) == [2, 2, 2]
    assert per_class(disjoint, disjoint.split.query) == [1, 1, 1]
    assert per_class(disjoint, disjoint.split.database) == [2, 2, 2]
    assert not (disjoint.split.train & (disjoint.split.query | disjoint.split.database)).any()


def test_a_validation_run_too_large_for_a_class_is_one_line(folder):
    with pytest.raises(GraphhashError, match=r"^prepare\.validation_size: 6 per class exceeds the 5 items"):
        prepare(params(folder, query_size=1, validation_size=6))
    with pytest.raises(GraphhashError, match=r"validation run's database set is empty"):
        prepare(params(folder, query_size=1, validation_size=5))


def test_content_digest_follows_the_bytes(folder):
    """The digest is stable when nothing changes, and changes when one image's bytes change."""
    before = prepare(params(folder)).content_sha256
    assert prepare(params(folder)).content_sha256 == before
    save_image(folder / "hen/3.png", noise_image(999))
    after = prepare(params(folder))
    assert after.content_sha256 != before
    assert after.ids == FOLDER_IDS  # same items, same split: only the content differs


def test_content_digest_does_not_depend_on_the_split(folder):
    """Changing only the seed (hence the split) keeps the digest: it covers content, not masks."""
    assert prepare(params(folder, seed=1)).content_sha256 == prepare(params(folder, seed=2)).content_sha256


def test_prepare_paired_and_multi_label_sources(tmp_path):
    """wiki: both modalities, its test pairs the queries; mirflickr_tags: labels as 0/1 rows, queries drawn in all,
    the manifest round trip keeps them; a per-class limit on multi-label items is one line."""
    from test_paired import write_mirflickr, write_wiki

    (tmp_path / "wiki").mkdir()
    write_wiki(tmp_path / "wiki")
    m = prepare(PrepareParams(source="wiki", path=str(tmp_path / "wiki")))
    assert m.modalities == ["image", "text"] and int(m.split.query.sum()) == 3 and len(m) == 9
    assert all(item.startswith("t10") for item in np.array(m.ids)[m.split.query])
    (tmp_path / "tags").mkdir()
    _, labels = write_mirflickr(tmp_path / "tags")
    m = prepare(PrepareParams(source="mirflickr_tags", path=str(tmp_path / "tags"), split="random", query_size=10))
    assert m.modalities == ["tags"] and m.labels.dtype == bool and m.labels.shape == (50, 4)
    assert int(m.split.query.sum()) == 10
    m.save(tmp_path / "manifest.json")
    back = Manifest.load(tmp_path / "manifest.json")
    np.testing.assert_array_equal(back.labels, labels.astype(bool)[[int(i.split("/")[1]) for i in m.ids]])
    assert back.modalities == ["tags"]
    with pytest.raises(GraphhashError, match=r"prepare\.limit_per_class: the items have several labels each"):
        prepare(PrepareParams(source="mirflickr_tags", path=str(tmp_path / "tags"), limit_per_class=3))


def test_manifest_file_contents(folder, tmp_path):
    """The saved JSON holds ids, labels, classes and the three masks as 0/1 lists, with counts."""
    m = prepare(params(folder, query_size=1, train="disjoint", train_size=2))
    dest = tmp_path / "out" / "manifest.json"  # parent folder does not exist yet
    m.save(dest)
    raw = json.loads(dest.read_text(encoding="utf-8"))
    assert raw["ids"] == FOLDER_IDS
    assert raw["classes"] == CLASSES
    assert raw["labels"] == [CLASSES.index(i.split("/")[0]) for i in FOLDER_IDS]
    assert raw["source"] == "folder" and raw["path"] == str(folder) and raw["modalities"] == ["image"]
    assert raw["content_sha256"] == m.content_sha256 and raw["format"] == "graphhash-manifest/2"
    for name, count in (("query", 3), ("train", 6), ("database", 9)):
        assert set(raw[name]) <= {0, 1} and len(raw[name]) == len(FOLDER_IDS)
        assert sum(raw[name]) == count == raw["counts"][name]
    assert raw["counts"]["items"] == len(FOLDER_IDS)
    assert all(q + d + t == 1 for q, d, t in zip(raw["query"], raw["database"], raw["train"], strict=True))


def test_manifest_round_trip(folder, tmp_path):
    """Manifest.load gives back exactly what was saved."""
    m = prepare(params(folder, train="disjoint", train_size=1))
    m.save(tmp_path / "m.json")
    back = Manifest.load(tmp_path / "m.json")
    assert (back.source, back.path, back.classes, back.ids, back.content_sha256) == (
        m.source,
        m.path,
        m.classes,
        m.ids,
        m.content_sha256,
    )
    assert back.labels.dtype == np.int64 and np.array_equal(back.labels, m.labels)
    for name in ("query", "database", "train"):
        assert getattr(back.split, name).dtype == bool
        assert np.array_equal(getattr(back.split, name), getattr(m.split, name))


def test_save_is_byte_stable_and_leaves_no_temp_files(folder, tmp_path):
    """Saving twice (the second over the first) gives equal bytes and leaves only the manifest in the folder."""
    out = tmp_path / "data"
    m = prepare(params(folder))
    m.save(out / "manifest.json")
    first = (out / "manifest.json").read_bytes()
    m.save(out / "manifest.json")
    assert (out / "manifest.json").read_bytes() == first
    assert [p.name for p in out.iterdir()] == ["manifest.json"]


@pytest.fixture
def saved_manifest(folder, tmp_path):
    path = tmp_path / "manifest.json"
    prepare(params(folder)).save(path)
    return path


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda raw, text: "",  # empty file
        lambda raw, text: text[: len(text) // 2],  # truncated JSON
        lambda raw, text: "\x00\x01garbage",
        lambda raw, text: json.dumps(raw | {"format": "graphhash-manifest/0"}),
        lambda raw, text: json.dumps({k: v for k, v in raw.items() if k != "labels"}),
        lambda raw, text: json.dumps(raw | {"query": raw["query"][:-1]}),  # a mask of the wrong length
    ],
    ids=["empty", "truncated", "garbage", "old-format", "no-labels", "short-mask"],
)
def test_corrupt_manifest_names_the_file(saved_manifest, corrupt):
    """Loading a damaged manifest raises a GraphhashError naming the file."""
    text = saved_manifest.read_text(encoding="utf-8")
    saved_manifest.write_text(corrupt(json.loads(text), text), encoding="utf-8")
    with pytest.raises(GraphhashError, match=re.escape(str(saved_manifest))):
        Manifest.load(saved_manifest)


def test_missing_manifest_names_the_file(tmp_path):
    """A manifest that does not exist gives a GraphhashError naming it."""
    with pytest.raises(GraphhashError, match=re.escape(str(tmp_path / "none.json"))):
        Manifest.load(tmp_path / "none.json")


@pytest.mark.parametrize("text", ["[]", "null"])
def test_non_object_json_manifest_names_the_file(tmp_path, text):
    """A manifest file holding a JSON list or null is reported as an invalid manifest naming the file."""
    path = tmp_path / "manifest.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(GraphhashError, match=re.escape(str(path))):
        Manifest.load(path)


def test_failed_save_keeps_the_old_manifest_and_no_temp_files(saved_manifest):
    """A save that fails midway leaves the previous manifest intact and no temporary file behind."""
    before = saved_manifest.read_bytes()
    m = Manifest.load(saved_manifest)
    broken = Manifest(**(vars(m) | {"classes": [object()]}))  # not JSON-serialisable
    with pytest.raises(TypeError):
        broken.save(saved_manifest)
    assert saved_manifest.read_bytes() == before
    assert [p.name for p in saved_manifest.parent.iterdir() if p.name.startswith(".")] == []


def test_unreadable_items_do_not_stop_prepare(folder):
    """A dangling symbolic link and a link to itself stay in the manifest: prepare succeeds, extract decides."""
    (folder / "hen" / "gone.png").symlink_to(folder / "hen" / "nowhere.png")
    os.symlink("self.png", folder / "pig" / "self.png")
    m = prepare(params(folder))
    assert "hen/gone.png" in m.ids and "pig/self.png" in m.ids
    assert len(m) == len(FOLDER_IDS) + 2
    assert [m.classes[label] for label in m.labels] == [i.split("/")[0] for i in m.ids]
    assert prepare(params(folder)).content_sha256 == m.content_sha256  # the unreadable items count, stably


def test_repairing_a_dangling_link_changes_the_digest(folder):
    """When a dangling link's target appears, the content changed, so the digest does (and DVC reruns)."""
    (folder / "hen" / "gone.png").symlink_to(folder / "hen" / "target.png")
    before = prepare(params(folder)).content_sha256
    save_image(folder / "hen" / "target.png", noise_image(42))
    after = prepare(params(folder))
    assert "hen/target.png" in after.ids  # the target is an item of its own now, and the link reads its bytes
    assert after.content_sha256 != before


def test_prepare_stage_with_a_dangling_link_exits_zero(folder, tmp_path):
    """The prepare stage script writes the manifest, listing the unreadable item, and exits with status 0."""
    (folder / "cow" / "gone.png").symlink_to(folder / "cow" / "nowhere.png")
    work = tmp_path / "work"
    work.mkdir()
    yaml_path = json.dumps(str(folder))  # JSON strings are YAML strings
    (work / "params.yaml").write_text(f"prepare:\n  source: folder\n  path: {yaml_path}\n  query_size: 1\n")
    run = subprocess.run(
        [sys.executable, str(REPO / "stages" / "prepare.py"), "--manifest", "data/manifest.json"],
        cwd=work,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert "cow/gone.png" in json.loads((work / "data" / "manifest.json").read_text(encoding="utf-8"))["ids"]
    assert "Traceback" not in run.stderr
