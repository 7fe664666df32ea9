"""Backbones: output shapes, weight loading from every place it can come from, and clear errors."""

from __future__ import annotations

import hashlib
import re
from urllib.error import URLError

import numpy as np
import pytest
import torch
from PIL import Image

from graphhash.backbones import BACKBONES, EfficientNetLite0, ViTB16, load_backbone
from graphhash.errors import GraphhashError
from graphhash.params import validate
from graphhash.params.extract import ExtractParams
from graphhash.pixels import to_pixels

VIT_FILE = "vit_b_16-c867db91.pth"  # the name torchvision's IMAGENET1K_V1 weights have in the hub cache


@pytest.fixture(scope="module")
def random_vit_state() -> dict[str, torch.Tensor]:
    from torchvision.models import vit_b_16

    torch.manual_seed(123)
    return vit_b_16(weights=None).state_dict()


@pytest.mark.parametrize(("name", "size", "dim"), [("efficientnet_lite0", 64, 1280), ("vit_b_16", 224, 768)])
def test_feature_shapes(name, size, dim):
    backbone = load_backbone(name, "none", "", size)
    with torch.no_grad():
        out = backbone.model(torch.randn(2, 3, size, size))
    assert out.shape == (2, dim) == (2, backbone.dim)
    assert torch.isfinite(out).all()


def test_vit_feature_is_the_class_token_before_the_head(random_vit_state, tmp_path):
    """With the head removed, head(feature) gives the full model's logits."""
    from torchvision.models import vit_b_16

    torch.save(random_vit_state, tmp_path / "vit.pth")
    backbone = load_backbone("vit_b_16", "default", str(tmp_path / "vit.pth"), 224)
    full = vit_b_16(weights=None)
    full.load_state_dict(random_vit_state)
    full.eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        np.testing.assert_allclose(full.heads(backbone.model(x)).numpy(), full(x).numpy(), rtol=1e-4, atol=1e-4)


def test_vit_weights_come_from_the_torch_hub_cache_offline(random_vit_state, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(random_vit_state, tmp_path / "hub" / "checkpoints" / VIT_FILE)
    monkeypatch.setattr(torch.hub, "download_url_to_file", pytest.fail)  # must not be needed
    backbone = load_backbone("vit_b_16", "default", "", 224)
    assert backbone.weights == "IMAGENET1K_V1"
    loaded = backbone.model.state_dict()
    for key in ("conv_proj.weight", "encoder.ln.weight", "class_token"):
        assert torch.equal(loaded[key], random_vit_state[key])


def test_vit_weights_unavailable_offline_say_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def no_network(*args, **kwargs):
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    with pytest.raises(GraphhashError) as err:
        load_backbone("vit_b_16", "IMAGENET1K_V1", "", 224)
    message = str(err.value)
    assert "\n" not in message
    assert VIT_FILE in message and "extract.weights_path" in message and "efficientnet_lite0" in message
    assert not list((tmp_path / "hub" / "checkpoints").glob("*.pth")), "no half-downloaded file in the cache"


@pytest.mark.parametrize(
    ("name", "weights", "path", "size", "culprit"),
    [
        ("vit_b_16", "IMAGENET1K_V1", "", 160, "extract.image_size"),
        ("vit_b_16", "IMAGENET_V9", "", 224, "extract.weights"),
        ("efficientnet_lite0", "IMAGENET1K_V1", "", 160, "extract.weights"),
        ("efficientnet_lite0", "default", "missing.pth", 160, "extract.weights_path"),
    ],
)
def test_bad_backbone_settings_name_the_param(name, weights, path, size, culprit):
    with pytest.raises(GraphhashError, match=re.escape(culprit)) as info:
        load_backbone(name, weights, path, size)
    assert "\n" not in str(info.value)


def test_missing_weights_file_says_it_does_not_exist():
    with pytest.raises(GraphhashError, match=r"^extract\.weights_path: missing\.pth: does not exist$"):
        load_backbone("efficientnet_lite0", "default", "missing.pth", 160)


def test_unknown_backbone_is_refused_by_the_params():
    """An unknown backbone name is an error naming extract.backbone, raised when params.yaml is read."""
    with pytest.raises(GraphhashError, match=r"extract\.backbone") as info:
        validate({"extract": {"backbone": "resnet_101"}}, (ExtractParams,))
    assert "\n" not in str(info.value)


def test_registry_and_how_each_backbone_is_fed():
    """The two backbones, their feature sizes and the preprocessing their weights were trained with."""
    assert {"efficientnet_lite0": EfficientNetLite0, "vit_b_16": ViTB16} == BACKBONES
    # EfficientNet-Lite (TensorFlow): (x - 127) / 128 on 0..255 pixels, bicubic resizing
    assert EfficientNetLite0.dim == 1280 and EfficientNetLite0.interpolation == "bicubic"
    np.testing.assert_allclose(EfficientNetLite0.mean, [127 / 255] * 3)
    np.testing.assert_allclose(EfficientNetLite0.std, [128 / 255] * 3)
    # torchvision's ViT-B/16: ImageNet statistics, bilinear resizing
    assert ViTB16.dim == 768 and ViTB16.interpolation == "bilinear"
    np.testing.assert_allclose(ViTB16.mean, [0.485, 0.456, 0.406])
    np.testing.assert_allclose(ViTB16.std, [0.229, 0.224, 0.225])


def test_loaded_backbone_records_its_weights(tmp_path):
    """weights says what was loaded: none, or a local file by name and SHA-256 of its bytes."""
    backbone = load_backbone("efficientnet_lite0", "none", "", 64)
    assert isinstance(backbone, EfficientNetLite0) and backbone.weights == "none"
    assert not backbone.model.training
    torch.save(backbone.model.net.state_dict(), tmp_path / "lite.pth")
    again = load_backbone("efficientnet_lite0", "default", str(tmp_path / "lite.pth"), 64)
    digest = hashlib.sha256((tmp_path / "lite.pth").read_bytes()).hexdigest()
    assert again.weights == f"file:lite.pth sha256:{digest}"
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(again.model(x), backbone.model(x))


@pytest.mark.parametrize("name", ["efficientnet_lite0", "vit_b_16"])
def test_weights_path_that_is_a_folder_says_so(tmp_path, name):
    """A folder given as extract.weights_path is reported as a folder, not as a file that does not exist."""
    folder = tmp_path / "weights"
    folder.mkdir()
    with pytest.raises(GraphhashError) as info:
        load_backbone(name, "default", str(folder), 224)
    message = str(info.value)
    assert message == f"extract.weights_path: {folder}: is a folder, not a state-dict file"
    assert "does not exist" not in message


@pytest.fixture(scope="module")
def lite_state() -> dict[str, torch.Tensor]:
    return load_backbone("efficientnet_lite0", "none", "", 64).model.net.state_dict()


def test_state_dict_of_another_model_is_one_short_line_of_counts(random_vit_state, lite_state, tmp_path):
    """ViT-B/16 weights given to efficientnet_lite0: one short line counting the keys, not a list of hundreds."""
    torch.save(random_vit_state, tmp_path / "vit.pth")
    with pytest.raises(GraphhashError) as info:
        load_backbone("efficientnet_lite0", "default", str(tmp_path / "vit.pth"), 160)
    message = str(info.value)
    assert "\n" not in message and len(message) < 300
    assert message.startswith(f"extract.weights_path: {tmp_path / 'vit.pth'}: does not fit the model: ")
    assert not set(random_vit_state) & set(lite_state)  # no key in common, so every key is missing or unexpected
    assert f"{len(lite_state)} missing keys (e.g. " in message
    assert f"{len(random_vit_state)} unexpected keys (e.g. " in message


def test_state_dict_with_a_few_wrong_keys_counts_each_problem(lite_state, tmp_path):
    """Three keys dropped, two foreign ones added, one tensor resized: each problem counted, with an example."""
    state = dict(lite_state)
    dropped = ["_conv_stem.weight", "_bn0.weight", "_conv_head.weight"]
    for key in dropped:
        del state[key]
    state["extra.weight"] = torch.zeros(3)
    state["extra.bias"] = torch.zeros(3)
    state["_fc.bias"] = torch.zeros(7)  # 1000 in the model
    torch.save(state, tmp_path / "edited.pth")
    with pytest.raises(GraphhashError) as info:
        load_backbone("efficientnet_lite0", "default", str(tmp_path / "edited.pth"), 160)
    message = str(info.value)
    assert "\n" not in message and len(message) < 300
    assert "3 missing keys (e.g. _conv_stem.weight)" in message
    assert "2 unexpected keys (e.g. extra.weight)" in message
    assert "1 keys of another shape (e.g. _fc.bias: (7,) in the file, (1000,) in the model)" in message


@pytest.mark.parametrize(
    "content",
    [b"these are not weights\n", b"42\n", b"", bytes(range(256)) * 2, b"PK\x03\x04" + b"\x00" * 60],
    ids=["text", "number-text", "empty", "binary-junk", "broken-zip"],
)
def test_weights_file_that_is_not_torch_is_one_short_line(tmp_path, content):
    """A file torch cannot load: one line saying so, with no object address and more than a bare number."""
    path = tmp_path / "junk.pth"
    path.write_bytes(content)
    with pytest.raises(GraphhashError) as info:
        load_backbone("vit_b_16", "default", str(path), 224)
    message = str(info.value)
    assert message.startswith(f"extract.weights_path: {path}: not a PyTorch weights file (")
    assert "\n" not in message and len(message) < 300
    assert "0x" not in message and "weights_only=False" not in message
    detail = message.split("not a PyTorch weights file (", 1)[1].rstrip(")")
    assert re.search(r"[A-Za-z]{3} [A-Za-z]{3}", detail), detail  # a reason in words, not '101' alone


def test_weights_file_holding_no_tensors_says_what_it_holds(tmp_path):
    torch.save([torch.ones(2)], tmp_path / "list.pth")
    with pytest.raises(GraphhashError, match=r"list\.pth: holds a list, not a state dict of tensors$"):
        load_backbone("efficientnet_lite0", "default", str(tmp_path / "list.pth"), 160)


# ImageNet class indices: 281-285 are the domestic cats; 967 espresso, 968 cup; 504 coffee mug.
@pytest.mark.parametrize(("photo", "classes"), [("chelsea", {281, 282, 283, 284, 285}), ("coffee", {967, 968, 504})])
def test_real_efficientnet_weights_recognise_real_photographs(photo, classes):
    """The shipped ImageNet weights, fed through graphhash's preprocessing, name the photo's subject."""
    import skimage.data

    backbone = load_backbone("efficientnet_lite0", "default", "", 224)
    pixels = to_pixels(Image.fromarray(getattr(skimage.data, photo)()).convert("RGB"), 224, backbone.interpolation)
    x = torch.from_numpy(pixels).permute(2, 0, 1).float()[None] / 255.0
    x = (x - torch.tensor(backbone.mean).view(1, 3, 1, 1)) / torch.tensor(backbone.std).view(1, 3, 1, 1)
    with torch.no_grad():
        logits = backbone.model.net._fc(backbone.model(x))  # the classifier on graphhash's feature
    assert int(logits.argmax()) in classes
