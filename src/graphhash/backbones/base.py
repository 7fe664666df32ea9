"""What every backbone is: a pretrained model from images to one feature vector each, and how to feed it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

from torch import nn

from graphhash.files.atomic import file_sha256

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Backbone(ABC):
    """A feature extractor: ``model`` maps float images (B, 3, H, W), scaled to [0, 1] and normalised with
    ``mean``/``std``, to features (B, ``dim``); images are resized for it with ``interpolation``.

    ``weights`` records what was loaded (written into the features file). Subclasses build themselves with
    ``load``; ``weights: none`` gives a fixed-seed random initialisation, for tests only.
    """

    dim: ClassVar[int]
    mean: ClassVar[tuple[float, float, float]]
    std: ClassVar[tuple[float, float, float]]
    interpolation: ClassVar[str]  # bicubic or bilinear

    def __init__(self, model: nn.Module, weights: str):
        self.model = model.eval().requires_grad_(False)
        self.weights = weights

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
