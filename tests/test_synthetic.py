"""The synthetic source: a labelled Gaussian mixture made on demand, the same whatever is read in whatever order,
whose noise sets how separable its classes are, and that the pipeline reopens from the manifest alone."""

from __future__ import annotations

import numpy as np
import pytest

from graphhash.data.images import BadItemError
from graphhash.data.sources import SyntheticSource, open_source
from graphhash.data.sources.vectors import SYNTHETIC_BLOCK
from graphhash.errors import GraphhashError
from graphhash.files.features import read_features
from graphhash.files.manifest import Manifest
from graphhash.params import validate
from graphhash.params.extract import ExtractParams
from graphhash.params.prepare import PrepareParams
from graphhash.pipeline import extract as extract_module
from graphhash.pipeline.extract import extract
from graphhash.pipeline.prepare import prepare

SMALL = {"items": 300, "dimension": 24, "classes": 7, "noise": 0.5, "seed": 3}  # 300 is not a multiple of 64 or 7


def test_listing_ids_labels_and_classes():
    """Ids are sorted class-<c>/<i>, zero-padded; item i is in class floor(i C / N), so classes are balanced."""
    listing = SyntheticSource(**SMALL).listing()
    assert len(listing.ids) == 300 and listing.ids == sorted(listing.ids)
    assert listing.ids[0] == "class-0/000" and listing.ids[-1] == "class-6/299"
    assert listing.classes == [f"class-{c}" for c in range(7)]
    assert listing.labels.dtype == np.int64
    assert listing.labels.tolist() == [i * 7 // 300 for i in range(300)]
    assert [listing.classes[label] for label in listing.labels] == [i.split("/")[0] for i in listing.ids]
    assert set(np.bincount(listing.labels)) == {42, 43}  # 300 / 7 = 42.9
    assert listing.native_query is None


def test_listing_a_million_items_makes_no_vector(monkeypatch):
    """Listing is ids and labels only: no row is generated, however many items."""
    monkeypatch.setattr(SyntheticSource, "_block", lambda self, b: pytest.fail("listing generated a block"))
    listing = SyntheticSource(items=1_000_000, classes=1000).listing()
    assert len(listing.ids) == 1_000_000
    assert listing.ids[:2] == ["class-000/000000", "class-000/000001"] and listing.ids[-1] == "class-999/999999"
    assert np.array_equal(np.bincount(listing.labels), np.full(1000, 1000))


def test_vectors_are_float32_of_the_dimension_and_finite():
    source = SyntheticSource(**SMALL)
    vectors = np.stack([source.vector(i) for i in source.listing().ids])
    assert vectors.shape == (300, 24) and vectors.dtype == np.float32
    assert np.isfinite(vectors).all() and vectors.std() > 0.5
    assert source.holds_vectors is True
    assert source.read("class-2/100") == source.vector("class-2/100").tobytes()


def test_same_vectors_whatever_the_order_and_the_object():
    """Two sources with the same hyperparameters give every item the same bits, read in order, backwards,
    at random or as one range."""
    ids = SyntheticSource(**SMALL).listing().ids
    forwards = SyntheticSource(**SMALL)
    reference = {i: forwards.vector(i) for i in ids}
    backwards = SyntheticSource(**SMALL)
    for item_id in reversed(ids):
        assert np.array_equal(backwards.vector(item_id), reference[item_id]), item_id
    shuffled = SyntheticSource(**SMALL)
    for k in np.random.default_rng(0).permutation(len(ids)):
        assert np.array_equal(shuffled.vector(ids[k]), reference[ids[k]]), ids[k]
    whole = SyntheticSource(**SMALL).rows()
    assert np.array_equal(whole, np.stack([reference[i] for i in ids]))
    assert np.array_equal(SyntheticSource(**SMALL).rows(70, 130), whole[70:130])  # across a block boundary


def test_the_seed_and_the_noise_change_the_vectors():
    base = SyntheticSource(**SMALL).rows()
    assert not np.allclose(SyntheticSource(**(SMALL | {"seed": 4})).rows(), base)
    assert not np.allclose(SyntheticSource(**(SMALL | {"noise": 2.0})).rows(), base)


def test_a_vector_returned_is_a_copy():
    """Changing a vector read does not change what the next read of it gives."""
    source = SyntheticSource(**SMALL)
    first = source.vector("class-0/005")
    expected = first.copy()
    first[:] = 0
    assert np.array_equal(source.vector("class-0/005"), expected)


def test_reading_in_order_makes_each_block_once(monkeypatch):
    """The last block is kept: sequential reads generate ceil(N / 64) blocks, each holding at most 64 rows."""
    made = []
    block = SyntheticSource._block
    monkeypatch.setattr(SyntheticSource, "_block", lambda self, b: made.append(b) or block(self, b))
    source = SyntheticSource(**SMALL)
    for item_id in source.listing().ids:
        source.vector(item_id)
    assert made == list(range(-(-300 // SYNTHETIC_BLOCK)))
    assert len(source._last_block[1]) <= SYNTHETIC_BLOCK


def nearest_class_mean_accuracy(noise: float) -> float:
    """The fraction of items whose nearest class mean (by cosine, means of the items themselves) is their class."""
    source = SyntheticSource(items=1600, dimension=64, classes=8, noise=noise, seed=0)
    x, labels = source.rows(), source.listing().labels
    means = np.stack([x[labels == c].mean(axis=0) for c in range(8)])
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    return float(np.mean((unit @ means.T).argmax(axis=1) == labels))


def test_noise_sets_how_separable_the_classes_are():
    """The classes are real, and the noise is the difficulty: sqrt(D / (2 + sigma^2)) is 5.5 at sigma 0.5 and 1.0
    at sigma 8, where the nearest class mean finds clearly fewer of the 8 classes (chance: 1/8)."""
    easy, hard = nearest_class_mean_accuracy(0.5), nearest_class_mean_accuracy(8.0)
    assert easy > 0.99
    assert 0.2 < hard < 0.7


def test_address_reopens_the_same_mixture():
    """``address`` writes every hyperparameter; open_source reads it back; a key left out takes its default."""
    source = SyntheticSource(**SMALL)
    assert source.address == "items=300,dimension=24,classes=7,noise=0.5,seed=3"
    again = open_source("synthetic", source.address)
    assert isinstance(again, SyntheticSource) and again.address == source.address
    assert np.array_equal(again.rows(), source.rows())
    assert open_source("synthetic", "items=500").address == "items=500,dimension=1280,classes=100,noise=0.5,seed=0"


@pytest.mark.parametrize(
    "address, words",
    [
        ("items=5,classes=10", "classes: must be <= items (10 > 5)"),
        ("items=0", "items: Input should be greater than or equal to 1"),
        ("items=ten", "'items=ten' is not key=number"),
        ("colours=3", "colours: Unexpected keyword argument"),
    ],
)
def test_a_bad_address_is_one_line_naming_the_key(address, words):
    with pytest.raises(GraphhashError) as info:
        open_source("synthetic", address)
    assert str(info.value) == f"synthetic source {address!r}: {words}"


@pytest.mark.parametrize(
    "synthetic, line",
    [
        ({"items": 5, "classes": 10}, "prepare.synthetic.classes: must be <= items (10 > 5)"),
        ({"dimension": 0}, "prepare.synthetic.dimension: Input should be greater than or equal to 1 (got 0)"),
        ({"noise": -0.1}, "prepare.synthetic.noise: Input should be greater than or equal to 0 (got -0.1)"),
        ({"nosie": 1.0}, "prepare.synthetic.nosie: unknown key (did you mean 'noise'?)"),
    ],
)
def test_bad_params_are_one_line_naming_the_key(synthetic, line):
    with pytest.raises(GraphhashError) as info:
        validate({"prepare": {"source": "synthetic", "synthetic": synthetic}}, (PrepareParams,))
    assert str(info.value) == f"params.yaml: {line}"


def test_an_id_not_of_the_mixture_is_a_bad_item():
    source = SyntheticSource(**SMALL)
    for item_id in ("class-0/300", "class-1/000", "class-0/0", "class-0/abc", "nothing"):
        with pytest.raises(BadItemError, match="no such item in this mixture"):
            source.vector(item_id)


@pytest.mark.parametrize("workers", [0, 2])
def test_prepare_and_extract_write_the_mixture_as_the_features(tmp_path, monkeypatch, workers):
    """prepare records the mixture in the manifest's path; extract reopens it from the manifest alone and, with
    no backbone, writes each item's vector as its features row."""
    monkeypatch.setattr(extract_module, "load_backbone", lambda *a, **k: pytest.fail("a backbone was loaded"))
    params = PrepareParams(source="synthetic", synthetic=SMALL, query_size=3)
    prepare(params).save(tmp_path / "manifest.json")
    manifest = Manifest.load(tmp_path / "manifest.json")
    assert manifest.source == "synthetic" and manifest.path == "items=300,dimension=24,classes=7,noise=0.5,seed=3"
    assert len(manifest) == 300 and manifest.split.query.sum() == 21
    extract_params = ExtractParams(batch_size=50, num_workers=workers, device="cpu")
    extract(manifest, extract_params, tmp_path / "features.h5")
    fs = read_features(tmp_path / "features.h5")
    reference = SyntheticSource(items=300, dimension=24, classes=7, noise=0.5, seed=3)
    assert fs.ids == reference.listing().ids
    assert np.array_equal(fs.features, np.stack([reference.vector(i) for i in fs.ids]))
    assert fs.labels.tolist() == reference.listing().labels.tolist()


def test_the_manifest_digest_pins_the_mixture():
    """The content digest covers the vectors' bytes: another seed is another digest, the same params the same."""
    digest = prepare(PrepareParams(source="synthetic", synthetic=SMALL, query_size=3)).content_sha256
    assert prepare(PrepareParams(source="synthetic", synthetic=SMALL, query_size=3)).content_sha256 == digest
    other = prepare(PrepareParams(source="synthetic", synthetic=SMALL | {"seed": 4}, query_size=3))
    assert other.content_sha256 != digest
