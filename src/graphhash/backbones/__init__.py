"""Pretrained image backbones, by the name ``extract.backbone`` gives them."""

from __future__ import annotations

from graphhash.backbones.base import Backbone
from graphhash.backbones.efficientnet import EfficientNetLite0
from graphhash.backbones.vit import ViTB16

BACKBONES: dict[str, type[Backbone]] = {
    "efficientnet_lite0": EfficientNetLite0,
    "vit_b_16": ViTB16,
}


def load_backbone(name: str, weights: str, weights_path: str, image_size: int) -> Backbone:
    """Backbone ``name`` (a key of ``BACKBONES``) in eval mode with the requested weights."""
    return BACKBONES[name].load(weights, weights_path, image_size)
