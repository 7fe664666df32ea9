"""Backbones: output shapes, weight loading from every place it can come from, and clear errors."""

from __future__ import annotations

import re
from urllib.error import URLError

import numpy as np
import pytest
import torch
from PIL import Image

from graphhash.backbones import load_backbone
from graphhash.errors import GraphhashError
from graphhash.images import to_pixels

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
        ("resnet_101", "default", "", 224, "extract.backbone"),
    ],
)
def test_bad_backbone_settings_name_the_param(name, weights, path, size, culprit):
    with pytest.raises(GraphhashError, match=re.escape(culprit)):
        load_backbone(name, weights, path, size)


def test_weights_file_that_does_not_fit_is_a_clear_error(random_vit_state, tmp_path):
    torch.save(random_vit_state, tmp_path / "vit.pth")
    with pytest.raises(GraphhashError, match=r"vit\.pth does not match efficientnet_lite0"):
        load_backbone("efficientnet_lite0", "default", str(tmp_path / "vit.pth"), 160)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(GraphhashError, match=r"junk\.pth is not a loadable state dict"):
        load_backbone("vit_b_16", "default", str(tmp_path / "junk.pth"), 224)


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
