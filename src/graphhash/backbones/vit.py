"""torchvision's ViT-B/16. The feature is the 768-d class token after the final LayerNorm (head removed).

Weights come through torchvision's weights API (``IMAGENET1K_V1`` by default; looked up in the torch hub
cache and downloaded only when missing) or from a local state-dict file. Fed with ImageNet's mean and
standard deviation, resized bilinearly.
"""

from __future__ import annotations

import sys
from pathlib import Path
from urllib.error import URLError

import torch
from torch import nn

from graphhash.backbones.base import IMAGENET_MEAN, IMAGENET_STD, Backbone, describe_file
from graphhash.errors import GraphhashError
from graphhash.files.models import load_weights, read_state_dict


class _Embed(nn.Module):
    """Patches, class token and position embedding: (B, 3, S, S) -> (B, 1 + (S / 16)^2, 768)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.patches, self.dropout = model.conv_proj, model.encoder.dropout
        self.class_token, self.position = model.class_token, model.encoder.pos_embedding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patches(x).flatten(2).transpose(1, 2)  # (B, patches, 768)
        tokens = torch.cat([self.class_token.expand(len(tokens), -1, -1), tokens], dim=1)
        return self.dropout(tokens + self.position)


class _ClassToken(nn.Module):
    def __init__(self, norm: nn.Module):
        super().__init__()
        self.norm = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x)[:, 0]


class ViTB16(Backbone):
    dim = 768
    mean = IMAGENET_MEAN
    std = IMAGENET_STD
    interpolation = "bilinear"
    activations = 24

    def stages(self) -> list[nn.Module]:
        """The embedding, the 12 encoder layers, and the final LayerNorm's class token: 14 stages."""
        return [_Embed(self.model), *self.model.encoder.layers, _ClassToken(self.model.encoder.ln)]

    @classmethod
    def load(cls, weights: str, weights_path: str, image_size: int) -> ViTB16:
        from torchvision.models import ViT_B_16_Weights, vit_b_16

        if weights_path:
            model = vit_b_16(weights=None, image_size=image_size)
            origin = f"extract.weights_path: {weights_path}"
            load_weights(model, read_state_dict(weights_path, origin), origin)
            described = describe_file(weights_path)
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
                raise GraphhashError(
                    f"extract.image_size: vit_b_16 with weights {name} needs {needed}, got {image_size}"
                )
            model = vit_b_16(weights=None, image_size=needed)
            load_weights(model, _hub_state_dict(enum), f"torchvision weights {name}")
            described = name
        model.heads = nn.Identity()  # the class token after the encoder's final LayerNorm
        return cls(model, described)


def _hub_state_dict(enum) -> dict[str, torch.Tensor]:
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
