"""Hashers trained with a binary layer, in their frozen-feature form: one linear layer on the features, trained with
a straight-through binary layer so that the codes' cosine similarities match the features' (``TrainedHasher``, with
``binarise`` the one hook); codes of any x are the signs of the layer's output.

- ``BiHalf`` (Li & van Gemert, AAAI 2021): the bi-half layer, every bit half +1 and half -1 in a batch.
- ``GreedyHash`` (Su, Zhang, Han & Tian, NeurIPS 2018): sign, with a cubic pull towards the codes.

torch is imported only when one of them is fitted.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from graphhash.errors import GraphhashError
from graphhash.hashers.base import Hasher
from graphhash.hyperparameters import BatchSize, Bits, LearningRate, NonNegative, Seed, Steps, checked
from graphhash.quantisation import bi_half_codes, paired_cosine_loss, sign, straight_through

if TYPE_CHECKING:
    import torch


class TrainedHasher(Hasher):
    """A linear hashing layer h = (x - mean) W + c on frozen features, trained as BiHalf's and GreedyHash's
    reference code trains theirs on frozen VGG-16 fc7 features (liyunqianggyn/Deep-Unsupervised-Image-Hashing,
    ImageHashing/Cifar10_I.py; ssppp/GreedyHash, unsupervised_vgg.py): for a batch of B items, b = binarise(h),
    the first B/2 items paired with the last B/2, and

        loss = mean_i (cos(b_i, b_{i + B/2}) - cos(x_i, x_{i + B/2}))^2 + penalty(h, b)

    with cos on the features as they are (not centred; theirs also pass through VGG's dropout in training,
    frozen features here do not). The inputs are centred by the training mean, an affine change of variables
    that the bias would otherwise have to learn (the same family of functions). Both references train with
    SGD (momentum 0.9, lr 1e-4, weight decay 5e-4, batch 32) for 60-300 epochs; here Adam, for ``steps``.
    W and c start uniform in +-1/sqrt(D) (torch's nn.Linear default), from the seed; the seed also orders
    the items (reshuffled every pass, each pass cut into batches of ``batch_size``, the rest left out).
    Training is ``steps`` Adam steps on one thread, whatever the number of items; deterministic. Codes of
    any x: h >= 0. ``binarise`` is the one hook: the straight-through codes and the penalty.

    Args:
        steps: Adam steps, whatever the number of training items
        batch_size: items per step (the reference: 32), paired half with half
        lr: Adam's learning rate
    """

    @checked
    def __init__(
        self,
        bits: Bits,
        seed: Seed,
        *,
        steps: Steps = 3000,
        batch_size: BatchSize = 32,
        lr: LearningRate = 1e-3,
    ):
        super().__init__(bits, seed)
        self.steps, self.batch_size, self.lr = steps, batch_size, lr

    def binarise(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, bits) layer outputs -> codes in {-1, +1} (with a straight-through gradient) and the penalty."""
        raise NotImplementedError

    def objective(self, h: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """The training loss of one batch: its layer outputs h (B, bits) and features (B, D)."""
        codes, penalty = self.binarise(h)
        return paired_cosine_loss(codes, features) + penalty

    def fit(self, x: np.ndarray) -> TrainedHasher:
        import torch

        from graphhash.runtime import single_threaded

        x = np.asarray(x, dtype=np.float64)
        n, dim = x.shape
        if n < 2:
            raise GraphhashError(f"baselines: {self.name} needs at least 2 training items, not {n}")
        self.mean_ = x.mean(axis=0)
        features = torch.as_tensor(x, dtype=torch.float32)
        inputs = torch.as_tensor(x - self.mean_, dtype=torch.float32)
        generator = torch.Generator().manual_seed(self.seed)
        bound = 1 / math.sqrt(dim)
        weight = ((torch.rand(dim, self.bits, generator=generator) * 2 - 1) * bound).requires_grad_()
        bias = ((torch.rand(self.bits, generator=generator) * 2 - 1) * bound).requires_grad_()
        optimiser = torch.optim.Adam([weight, bias], lr=self.lr)
        size = min(self.batch_size, n)
        losses: list[float] = []
        with single_threaded():
            while len(losses) < self.steps:
                order = torch.randperm(n, generator=generator)
                for batch in order[: n - n % size].split(size):
                    if len(losses) == self.steps:
                        break
                    loss = self.objective(inputs[batch] @ weight + bias, features[batch])
                    optimiser.zero_grad(set_to_none=True)
                    loss.backward()
                    optimiser.step()
                    losses.append(loss.item())
        if not math.isfinite(losses[-1]):
            raise GraphhashError(f"baselines: {self.name}'s loss became {losses[-1]}; lower its lr")
        self.weight_, self.bias_ = weight.detach().double().numpy(), bias.detach().double().numpy()
        self.losses_ = losses
        return self

    def project(self, x: np.ndarray) -> np.ndarray:
        """The layer's outputs h (n, bits)."""
        return (np.asarray(x, dtype=np.float64) - self.mean_) @ self.weight_ + self.bias_

    def encode(self, x: np.ndarray) -> np.ndarray:
        return self.project(x) >= 0


class BiHalf(TrainedHasher):
    """BiHalf (Li & van Gemert, "Deep Unsupervised Image Hashing by Maximizing Bit Entropy", AAAI 2021) on
    frozen features: ``TrainedHasher`` with the bi-half layer, which gives every bit of a batch half +1 and
    half -1 (the maximum bit entropy) with a straight-through backward, and the reference code's extra
    gradient gamma (h - b) / (B bits), written here as the penalty gamma / 2 mean((h - b)^2) with b constant.
    Codes at test time: sign(h), as theirs (the bi-half layer needs a batch). On the digits' EfficientNet
    features at 32 bits, mAP@1000 was 0.735, 0.748 and 0.754 after 1,000, 3,000 and 10,000 steps.

    Args:
        gamma: weight of the pull of h towards its codes (the reference: 6)
    """

    method = "bihalf"

    @checked
    def __init__(self, bits: Bits, seed: Seed, *, gamma: NonNegative = 6.0, **training: object):
        super().__init__(bits, seed, **training)
        self.gamma = gamma

    def binarise(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        codes, pull = bi_half_codes(h)
        return codes, self.gamma * pull


class GreedyHash(TrainedHasher):
    """GreedyHash (Su, Zhang, Han & Tian, "Greedy Hash: Towards Fast Optimization for Accurate Hash Coding in
    CNN", NeurIPS 2018), unsupervised, on frozen features: ``TrainedHasher`` with sign in the forward pass
    and the gradient passed straight through (their "greedy principle"), and their penalty
    alpha mean(| |h| - 1 |^3) = alpha mean(|h - sign(h)|^3) pulling h towards its codes. Nothing balances
    the bits: where the features' cosines are all high (non-negative features; the digits' EfficientNet
    features: 0.69 on average), matching them makes most bits nearly constant, which BiHalf's layer prevents.

    Args:
        alpha: weight of the cubic penalty (the reference: 0.1)
    """

    method = "greedyhash"

    @checked
    def __init__(self, bits: Bits, seed: Seed, *, alpha: NonNegative = 0.1, **training: object):
        super().__init__(bits, seed, **training)
        self.alpha = alpha

    def binarise(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return straight_through(h, sign), self.alpha * (h.abs() - 1).abs().pow(3).mean()
