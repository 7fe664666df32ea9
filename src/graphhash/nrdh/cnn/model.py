"""The CNN hash network: the run's backbone, then Table 2's head (``graphhash.nrdh.cnn``)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from graphhash.backbones import Backbone
from graphhash.errors import GraphhashError
from graphhash.nrdh.hashnet import HashNet
from graphhash.runtime import autocast


class HashCNN(nn.Module):
    """The backbone's stages, then Table 2's head: images (B, 3, S, S) -> fc (B, bits), before tanh.

    Args:
        backbone: the pretrained backbone whose ``stages`` (modules applied in order) the network is made of, and
            whose ``inputs`` normalise its pixels.
        trainable: how many of the last stages are trained; the rest form ``frozen``.
        head: Table 2's head, whose ``in_dim`` is the backbone's feature size.

    Shapes:
        ``frozen``: images (B, 3, S, S) -> the trained stages' input; ``forward(x, own, context)``: that
        input, optional own weights (B,) and neighbour sums (B, D) -> (B, bits).
    """

    def __init__(self, backbone: Backbone, trainable: int, head: HashNet):
        super().__init__()
        stages = backbone.stages()
        if trainable > len(stages):
            raise GraphhashError(f"hash.cnn.trainable: {trainable}, but the backbone has {len(stages)} stages")
        cut = len(stages) - trainable
        self.frozen = nn.Sequential(*stages[:cut]).requires_grad_(False)
        self.tuned = nn.Sequential(*stages[cut:])
        self.head = head
        self.inputs = type(backbone).inputs  # the backbone's normalisation of pixels

    @classmethod
    def build(cls, backbone: Backbone, bits: int, *, trainable: int, negative_slope: float) -> HashCNN:
        """The network on ``backbone`` with a fresh head of ``bits`` bits (no dropout)."""
        return cls(backbone, trainable, HashNet(backbone.dim, bits, negative_slope=negative_slope, dropout=0.0))

    @property
    def bits(self) -> int:
        return self.head.bits

    def train(self, mode: bool = True) -> HashCNN:
        super().train(mode)
        self.frozen.eval()  # pretrained statistics and no drop-connect in the stages that are not trained
        return self

    def forward(
        self, x: torch.Tensor, own: torch.Tensor | None = None, context: torch.Tensor | None = None
    ) -> torch.Tensor:
        h = self.tuned(x)
        if own is not None:
            h = own[:, None] * h + context
        return self.head(h.float())

    @torch.inference_mode()
    def codes(
        self,
        x: torch.Tensor,
        device: torch.device,
        own: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
    ) -> np.ndarray:
        """Codes (B, bits) as bools, Eq. 19 (bit = tanh(fc) >= 0), of images as uint8 pixels (B, S, S, 3) or of
        the frozen stages' outputs (float), on ``device``; ``own`` and ``context`` as in ``forward``."""
        self.to(device, memory_format=torch.channels_last).eval()
        with autocast(device):
            x = self.frozen(self.inputs(x, device)) if x.dtype == torch.uint8 else x.to(device)
            parts = (own.to(device), context.to(device)) if own is not None else ()
            return (torch.tanh(self(x, *parts).float()) >= 0).cpu().numpy()
