"""``hash.network: cnn``: the backbone's stages against the library's own forward, the network against Table 2's
head on frozen features, augmentations, and the training run's resume from its per-epoch checkpoint."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_in
from PIL import Image

from graphhash.backbones import load_backbone
from graphhash.data.sources import open_source
from graphhash.errors import GraphhashError
from graphhash.files.codes import read_codes
from graphhash.files.features import read_features
from graphhash.files.manifest import Manifest
from graphhash.files.resume import Resume
from graphhash.nrdh.cnn import images as cnn
from graphhash.nrdh.cnn.model import HashCNN
from graphhash.nrdh.encoder import ItemEncoder, load_hash_network
from graphhash.params.extract import ExtractParams
from graphhash.params.graph import GraphParams
from graphhash.params.hash import CnnParams, HashParams
from graphhash.pipeline.hash import hash_codes


@pytest.mark.parametrize(("name", "size"), [("efficientnet_lite0", 64), ("vit_b_16", 32)])
def test_stages_compose_to_the_backbone(name, size):
    backbone = load_backbone(name, "none", "", size)
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = x
        for stage in backbone.stages():
            y = stage(y)
        reference = backbone.model(x)  # the library's own forward (efficientnet_lite_pytorch, torchvision)
    assert torch.equal(y, reference)


def test_a_frozen_cnn_is_the_head_on_the_backbone_features():
    backbone = load_backbone("efficientnet_lite0", "none", "", 32)
    model = HashCNN.build(backbone, 16, trainable=0, negative_slope=0.2).eval()
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.allclose(model(model.frozen(x)), model.head(backbone.model(x)), atol=1e-5)
        own, context = torch.full((3,), 0.3), torch.randn(3, backbone.dim)
        assert torch.allclose(model(model.frozen(x), own, context),
                              model.head(0.3 * backbone.model(x) + context), atol=1e-5)  # fmt: skip


def test_training_mode_leaves_the_frozen_stages_in_inference_mode():
    backbone = load_backbone("efficientnet_lite0", "none", "", 32)
    model = HashCNN.build(backbone, 8, trainable=3, negative_slope=0.2).train()
    norms = lambda part: [m for m in part.modules() if isinstance(m, torch.nn.BatchNorm2d)]  # noqa: E731
    assert not any(m.training for m in norms(model.frozen)) and all(m.training for m in norms(model.tuned))
    assert model.head.training and all(block.training for block in model.tuned)  # drop-connect on
    assert not any(p.requires_grad for p in model.frozen.parameters())
    assert len(model.tuned) == 3 and len(model.frozen) == 15
    with pytest.raises(GraphhashError, match=r"hash.cnn.trainable: 19, but the backbone has 18 stages"):
        HashCNN.build(backbone, 8, trainable=19, negative_slope=0.2)


def test_augmentations():
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8))
    plain, ones = cnn.augmented(img, 16, "bilinear", (), 0.5, np.random.default_rng(0))
    assert np.array_equal(ones, np.ones(3, dtype=np.float32))
    flips = [cnn.augmented(img, 16, "bilinear", ("flip",), 0.5, np.random.default_rng(seed))[0] for seed in range(20)]
    assert all(np.array_equal(f, plain) or np.array_equal(f, plain[:, ::-1]) for f in flips)
    assert 3 <= sum(np.array_equal(f, plain[:, ::-1]) for f in flips) <= 17
    every = ("crop", "flip", "jitter")
    a, b = (cnn.augmented(img, 16, "bilinear", every, 0.5, np.random.default_rng([0, 1, 2])) for _ in range(2))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[0].shape == (16, 16, 3)
    assert ((a[1] >= 1 - cnn.JITTER) & (a[1] <= 1 + cnn.JITTER)).all() and not np.allclose(a[1], 1.0)
    other = cnn.augmented(img, 16, "bilinear", every, 0.5, np.random.default_rng([0, 2, 2]))
    assert not np.array_equal(a[0], other[0])
    # a crop of the whole image (scale 1, and the aspect ratio clipped to the image) is the plain resize
    whole = Image.fromarray(np.asarray(img)[:, :20])  # square
    crops = [cnn.augmented(whole, 16, "bilinear", ("crop",), 1.0, np.random.default_rng(s))[0] for s in range(5)]
    assert any(np.array_equal(c, cnn.augmented(whole, 16, "bilinear", (), 1.0, None)[0]) for c in crops)


def test_jitter_against_a_per_image_reference():
    """The batch jitter against a per-image loop written from the definitions (brightness, then contrast
    around the mean grey level, then saturation around each pixel's grey level, clipped at the end)."""
    rng = np.random.default_rng(4)
    x = rng.uniform(0, 255, (3, 3, 5, 5)).astype(np.float32)
    factors = rng.uniform(0.6, 1.4, (3, 3)).astype(np.float32)
    got = cnn.jitter(torch.from_numpy(x.copy()), torch.from_numpy(factors)).numpy()
    weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    for image, (b, c, s), out in zip(x, factors, got, strict=True):
        y = image * b
        mean = np.einsum("c,chw->hw", weights, y).mean()
        y = (y - mean) * c + mean
        grey = np.einsum("c,chw->hw", weights, y)
        y = np.clip((y - grey) * s + grey, 0, 255)
        np.testing.assert_allclose(out, y, rtol=1e-5, atol=1e-3)
    ones = cnn.jitter(torch.from_numpy(x.copy()), torch.ones(3, 3)).numpy()
    np.testing.assert_allclose(ones, x, atol=1e-3)


def _run_files(search_run: Path) -> dict[str, Path]:
    data = search_run / "data"
    return {"features_path": data / "features.h5", "neighbours_path": data / "neighbours.h5",
            "representations": data / "representations" / "gcn", "manifest": data / "manifest.json"}  # fmt: skip


def _train(search_run: Path, out: Path, cnn_options: dict, **hash_options) -> None:
    params = HashParams(network="cnn", cnn=CnnParams(image_size=32, batch_size=32, **cnn_options), **hash_options)
    graph = GraphParams()
    files = _run_files(search_run)
    hash_codes(files["features_path"], files["neighbours_path"], files["representations"], "gcn", [16], params, graph,
               codes=out / "codes", models=out / "models" / "nrdh-gcn", losses=out / "losses",
               extract=ExtractParams(image_size=32, batch_size=50), manifest=files["manifest"])  # fmt: skip


def _digests(out: Path) -> dict[str, str]:
    files = [out / "codes" / "nrdh-gcn-16-image.h5", out / "models" / "nrdh-gcn" / "16" / "image" / "model.pt"]
    codes = read_codes(files[0])
    return {"query": hashlib.sha256(codes.query.tobytes()).hexdigest(),
            "database": hashlib.sha256(codes.database.tobytes()).hexdigest(),
            "model": hashlib.sha256(files[1].read_bytes()).hexdigest()}  # fmt: skip


@pytest.mark.parametrize("augment", [[], ["crop", "flip", "jitter"]], ids=["cached", "augmented"])
def test_an_interrupted_run_resumes_to_the_same_bytes(search_run, tmp_path, monkeypatch, caplog, augment):
    options = {"steps": 14, "trainable": 2, "augment": augment}  # 180 training items: 5 batches, 3 epochs
    _train(search_run, tmp_path / "whole", options)

    save = Resume.save

    def interrupted(self, name, data):
        save(self, name, data)
        raise KeyboardInterrupt  # as Ctrl-C right after the first epoch's checkpoint

    monkeypatch.setattr(Resume, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _train(search_run, tmp_path / "parts", options)
    assert len(list((tmp_path / "parts" / "models" / ".nrdh-gcn.resume").glob("*/checkpoint.pt"))) == 1
    monkeypatch.setattr(Resume, "save", save)
    with caplog.at_level("INFO", logger="graphhash.nrdh.cnn"):
        _train(search_run, tmp_path / "parts", options)
    assert "resuming after epoch 1 (step 5 of 14)" in caplog.text
    assert _digests(tmp_path / "parts") == _digests(tmp_path / "whole")
    assert not (tmp_path / "parts" / "models" / ".nrdh-gcn.resume").exists()  # removed once finished
    losses = (tmp_path / "parts" / "losses" / "16-image.csv").read_text()
    assert losses == (tmp_path / "whole" / "losses" / "16-image.csv").read_text() and losses.count("\n") == 4


def test_the_saved_network_hashes_the_images_to_the_stored_codes(search_run, tmp_path):
    _train(search_run, tmp_path, {"steps": 5, "trainable": 1}, input="features")
    network, config = load_hash_network(tmp_path / "models" / "nrdh-gcn" / "16" / "image")
    assert isinstance(network, HashCNN) and config["image_size"] == 32 and config["trainable"] == 1
    manifest = Manifest.load(_run_files(search_run)["manifest"])
    source = open_source(manifest.source, manifest.path)
    stored = read_codes(tmp_path / "codes" / "nrdh-gcn-16-image.h5")
    images = cnn.Images(source.image, stored.query_ids, 32, "bicubic", augment=(), crop_scale=1.0, seed=0)
    pixels = torch.from_numpy(np.stack([images[i][1] for i in range(len(images))]))  # no augmentation
    assert np.array_equal(np.packbits(network.codes(pixels, torch.device("cpu")), axis=1), stored.query)


def test_features_of_another_backbone_stop_the_stage_in_one_line(search_run, tmp_path):
    files = _run_files(search_run)
    assert read_features(files["features_path"]).attrs["backbone"] == "efficientnet_lite0"
    with pytest.raises(GraphhashError) as found:
        hash_codes(files["features_path"], files["neighbours_path"], files["representations"], "gcn", [16],
                   HashParams(network="cnn"), GraphParams(), codes=tmp_path / "c", models=tmp_path / "m",
                   losses=tmp_path / "l", extract=ExtractParams(backbone="vit_b_16", image_size=224),
                   manifest=files["manifest"])  # fmt: skip
    message = str(found.value)
    assert "\n" not in message and "features.h5: made with backbone efficientnet_lite0" in message
    assert "extract.backbone is vit_b_16" in message and not (tmp_path / "c").exists()


def test_encode_command_hashes_image_files_as_the_run_hashed_its_queries(search_run, tmp_path):
    """`graphhash encode MODEL IMAGES OUT` for a CNN trained with graph inputs: each query item's image, saved
    as a PNG, is hashed end to end and placed on the run's graph by its frozen-backbone features; the codes
    are the stored ones (all but float-level ties)."""
    _train(search_run, tmp_path / "run", {"steps": 5, "trainable": 1})
    stored = read_codes(tmp_path / "run" / "codes" / "nrdh-gcn-16-image.h5")
    manifest = Manifest.load(_run_files(search_run)["manifest"])
    source = open_source(manifest.source, manifest.path)
    (tmp_path / "images").mkdir()
    for n, item_id in enumerate(stored.query_ids):
        source.image(item_id).save(tmp_path / "images" / f"{n:03d}.png")
    out = tmp_path / "codes.npy"
    printed = run_in(search_run, "graphhash", "encode", str(tmp_path / "run" / "models" / "nrdh-gcn" / "16" / "image"),
                     str(tmp_path / "images"), str(out))  # fmt: skip
    assert f"{len(stored.query_ids)} codes packed into 2 bytes each" in printed
    codes = np.load(out)
    assert (codes == stored.query).all(axis=1).mean() >= 0.9
    features = _run_files(search_run)["features_path"]
    with pytest.raises(GraphhashError, match="hashes images, not features"):
        ItemEncoder.load(tmp_path / "run" / "models" / "nrdh-gcn" / "16" / "image", features).encode_file(features)
