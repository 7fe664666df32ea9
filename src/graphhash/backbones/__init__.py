"""Pretrained image backbones, by the name ``extract.backbone`` gives them."""

from __future__ import annotations

from graphhash.backbones.base import Backbone
from graphhash.backbones.efficientnet import EfficientNetLite0
from graphhash.backbones.vit import ViTB16
from graphhash.errors import GraphhashError

BACKBONES: dict[str, type[Backbone]] = {
    "efficientnet_lite0": EfficientNetLite0,
    "vit_b_16": ViTB16,
}


def load_backbone(
    name: str, weights: str, weights_path: str, image_size: int, *, made_with: str | None = None, features: str = ""
) -> Backbone:
    """Backbone ``name`` (a key of ``BACKBONES``) in eval mode with the requested weights. ``made_with``: the weights
    a run's features file ``features`` records; other weights are refused, since they would embed items unlike the
    run's."""
    backbone = BACKBONES[name].load(weights, weights_path, image_size)
    if made_with is not None and backbone.weights != made_with:
        raise GraphhashError(f"extract.weights: gives {backbone.weights}, but {features} was made with {made_with}; "
                             "set params.yaml's extract section back, or rerun the extract stage")  # fmt: skip
    return backbone
