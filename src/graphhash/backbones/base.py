"""What every backbone is: a pretrained model from images to one feature vector each, and how to feed it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from graphhash.files.atomic import file_sha256
from graphhash.runtime import autocast

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Backbone(ABC):
    """A feature extractor: ``model`` maps float images (B, 3, H, W), scaled to [0, 1] and normalised with
    ``mean``/``std``, to features (B, ``dim``); images are resized for it with ``interpolation``.

    ``weights`` records what was loaded (written into the features file). Subclasses build themselves with
    ``load``; ``weights: none`` gives a fixed-seed random initialisation, for tests only. ``inputs`` turns pixels
    into what the model takes, and ``embed`` pixels into features, on any device: what extraction, the CNN hash
    network and a search query all do.
    """

    dim: ClassVar[int]
    mean: ClassVar[tuple[float, float, float]]
    std: ClassVar[tuple[float, float, float]]
    interpolation: ClassVar[str]  # bicubic or bilinear
    # The memory of a forward pass without gradients per byte of its float32 input, measured on the CPU (the peak
    # resident memory of batches of 16 to 256): EfficientNet-Lite0 at 160 px 29-33, ViT-B/16 at 224 px 18-24.
    activations: ClassVar[int]

    def __init__(self, model: nn.Module, weights: str):
        self.model = model.eval().requires_grad_(False)
        self.weights = weights

    @classmethod
    def forward_bytes(cls, batch: int, image_size: int) -> int:
        """About the memory a forward pass of ``batch`` images of ``image_size`` takes: ``activations`` times the
        bytes of their float32 pixels (a lower bound for training, which keeps activations for the backward)."""
        return cls.activations * batch * 3 * image_size * image_size * 4

    @classmethod
    def inputs(
        cls, pixels: torch.Tensor, device: torch.device, adjust: Callable[[torch.Tensor], torch.Tensor] | None = None
    ) -> torch.Tensor:
        """uint8 pixels (B, S, S, 3) -> the model's input (B, 3, S, S), float on ``device``: x / 255 normalised by
        ``mean`` and ``std``, as one scale and one shift in place, channels-last in memory (NHWC is that layout).
        ``adjust`` changes the values in [0, 255] first (the CNN hash network's colour jitter)."""
        std = torch.tensor(cls.std, device=device).view(1, 3, 1, 1)
        mean = torch.tensor(cls.mean, device=device).view(1, 3, 1, 1)
        x = pixels.to(device, non_blocking=True).permute(0, 3, 1, 2).float()
        if adjust is not None:
            x = adjust(x)
        return x.mul_(1.0 / (255.0 * std)).sub_(mean / std)

    def to(self, device: torch.device) -> Backbone:
        """The model moved to ``device``, channels-last (the layout it runs fastest in)."""
        self.model.to(device, memory_format=torch.channels_last)
        return self

    @torch.inference_mode()
    def embed(self, pixels: torch.Tensor, device: torch.device) -> np.ndarray:
        """Features (B, dim) float32 of uint8 pixels (B, S, S, 3), on ``device`` (bf16 autocast with CUDA); the
        model must be there already (``to``)."""
        with autocast(device):
            features = self.model(self.inputs(pixels, device))
        return features.float().cpu().numpy()

    @abstractmethod
    def stages(self) -> list[nn.Module]:
        """The model as a sequence of stages, ``model(x) == stages[-1](...stages[0](x))``, sharing its weights.

        ``hash.cnn.trainable`` counts stages from the end: the trained part of the CNN hash network.
        """

    @classmethod
    @abstractmethod
    def load(cls, weights: str, weights_path: str, image_size: int) -> Backbone:
        """The backbone with ``weights`` (a name, ``default`` or ``none``) or the state dict at ``weights_path``."""


def describe_file(path: str) -> str:
    """How a local weights file is recorded: its name and the SHA-256 of its bytes."""
    return f"file:{Path(path).name} sha256:{file_sha256(path)}"
