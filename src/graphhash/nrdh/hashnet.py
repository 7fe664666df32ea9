"""Stage 2 of NRDH (section 3.2): the hash-function network, fitted to the node representations.

On the frozen backbone features x (Table 2's head):

    fc(x) = BN(W3 f2(x)),  f2 = BN(LeakyReLU(W2 f1)),  f1 = BN(LeakyReLU(W1 x))    in -> 256 -> 64 -> g
    (with ``hash.dropout`` p > 0, f1 and f2 are dropped out in training: each unit zeroed with probability p)
    fch(x) = tanh(fc(x))                                                          (Eq. 13)
    L2 = mu * MSE(fc(x), t(x)) + omega * BCE(fch(x), b),   b = 0.5 * (sign(fch(x)) + 1)   (Eqs. 15-18)
         + lambda * L_s + gamma * L_p
    code bit = 1 if fch(x) >= 0 else 0                                            (Eq. 19)

t(x) is the node representation g(x) (the paper) or its ITQ-rotated principal directions (``hash.target``).
The paper names PyTorch's MSELoss and BCELoss for Eqs. 15 and 17, so both are means over elements. The last
two terms are graphhash's (0 in the paper preset) and come from BiHalf (Li and van Gemert, AAAI 2021): h the
batch's bi-half codes of fc(x) (in every bit, half of the batch +1 and half -1; straight-through gradient),
with the first half of a batch of B items paired with the second,

    L_s = mean_i (cos(h_i, h_{i + B/2}) - cos(g(x_i), g(x_{i + B/2})))^2      (the codes keep the
                                                                               representations' similarities)
    L_p = 1/2 mean((fc(x) - h)^2), h constant                                 (balanced bits)

Training runs for ``steps`` Adam steps whatever the number of items. ``HashLearner`` holds the hyperparameters
(params.yaml's ``hash`` section is built from its signature): the loss, the training of the MLP, and the choices of
the stage (which network, which input, which target).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from graphhash.errors import GraphhashError
from graphhash.hyperparameters import BatchSize, Configurable, NonNegative, Positive, Seed, Steps, Unit, checked
from graphhash.quantisation import ITQ_ITERATIONS, bi_half_codes, itq, paired_cosine_loss

log = logging.getLogger(__name__)

HIDDEN = (256, 64)  # Table 2's hidden widths
ENCODE_BATCH = 4096  # items encoded at a time


class HashNet(nn.Module):
    """fc(x) of Table 2: (B, in_dim) -> (B, bits), before tanh.

    Args:
        in_dim, bits: the features' size and the code length.
        negative_slope: LeakyReLU's slope (Eq. 10).
        dropout: the probability of dropping each hidden unit in training (0: Table 2's layers as they are).
        hidden: the two hidden widths (Table 2: 256, 64).
    """

    def __init__(
        self, in_dim: int, bits: int, *, negative_slope: float, dropout: float, hidden: tuple[int, int] = HIDDEN
    ):
        super().__init__()
        h1, h2 = hidden
        slope = negative_slope
        self.in_dim, self.bits, self.negative_slope, self.dropout, self.hidden = in_dim, bits, slope, dropout, hidden
        dropped = [nn.Dropout(dropout)] if dropout > 0 else []  # none: Table 2's layers as they are
        self.layers = nn.Sequential(
            nn.Linear(in_dim, h1), nn.LeakyReLU(slope), nn.BatchNorm1d(h1), *dropped,
            nn.Linear(h1, h2), nn.LeakyReLU(slope), nn.BatchNorm1d(h2), *dropped,
            nn.Linear(h2, bits), nn.BatchNorm1d(bits),
        )  # fmt: skip

    @property
    def config(self) -> dict:
        """What rebuilds the network (saved with it): ``HashNet(**config)``."""
        return {"in_dim": self.in_dim, "bits": self.bits, "hidden": list(self.hidden),
                "negative_slope": self.negative_slope, "dropout": self.dropout}  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)

    @torch.no_grad()
    def codes(self, features: np.ndarray | torch.Tensor, batch_size: int = ENCODE_BATCH) -> np.ndarray:
        """Binary codes (n, bits) as bools: bit = fch(x) >= 0 (Eq. 19), with batch norm in inference mode, a batch
        of rows at a time."""
        self.eval()
        x = torch.as_tensor(np.asarray(features, dtype=np.float32))
        codes = [torch.tanh(self(chunk)) >= 0 for chunk in x.split(batch_size)]
        return torch.cat(codes).numpy() if codes else np.zeros((0, self.bits), dtype=bool)


@dataclass(frozen=True)
class Targets:
    """What the hash network is fitted to, one row per training item: ``fit`` (N, g), t(x) of the MSE, and
    ``reference`` (N, L), the node representations g(x), whose cosines the similarity term keeps."""

    fit: torch.Tensor
    reference: torch.Tensor

    def __len__(self) -> int:
        return len(self.fit)

    def __getitem__(self, rows: torch.Tensor) -> Targets:
        return Targets(self.fit[rows], self.reference[rows])

    def to(self, device: torch.device) -> Targets:
        return Targets(self.fit.to(device), self.reference.to(device))


LOSS_TERMS = ("loss", "mse", "bce", "similarity", "pull")


def rotated_targets(representations: np.ndarray, seed: int, bits: int | None = None) -> np.ndarray:
    """The representations centred and rotated by ITQ (Gong and Lazebnik): (N, L) -> (N, bits) float32.

    Bits are the signs of fc(x), and fc(x) is fitted to the representations, so each bit is the sign of one
    representation dimension. The autoencoder's dimensions are neither centred nor uncorrelated: bits come
    out unbalanced and redundant. A rotation changes no distance between representations, only the
    directions whose signs become bits: PCA (all g directions) decorrelates them, and ITQ's rotation then
    minimises the quantisation error ||B - V R||^2, which spreads variance evenly over the bits. When the
    representations are wider than the code (``represent.latent``), PCA keeps their ``bits`` principal
    directions first (``bits`` defaults to L: every direction, distances unchanged).
    """
    z = np.asarray(representations, dtype=np.float64)
    mean, directions, rotation, _ = itq(z, bits or z.shape[1], seed, ITQ_ITERATIONS)
    return ((z - mean) @ directions @ rotation).astype(np.float32)


class HashLearner(Configurable):
    """NRDH's stage 2: the hash network, what it is fitted to, and how (section 3.2, Table 2). ``fit`` trains the
    MLP on frozen features; the CNN's own options are ``graphhash.nrdh.cnn.training.CnnLearner``'s, with this
    loss, ``lr`` for the head and ``seed``.

    >>> x = torch.randn(64, 12)
    >>> targets = Targets(torch.randn(64, 8), torch.randn(64, 8))
    >>> network, history = HashLearner(steps=4, batch_size=16).fit(x, targets)
    >>> network.codes(x).shape, len(history)
    ((64, 8), 1)

    Args:
        network: mlp: Table 2's head on the frozen features | cnn: the backbone and the head trained on the images
            (the paper; options in hash.cnn)
        input: features: x (the paper) | graph: x over its kNN graph, for queries too
        target: what fc(x) fits: representation, g(x) (the paper) | rotated: g(x) centred, ITQ-rotated
        input_p: with input: graph, the weight an item keeps for itself (p of Eq. 4)
        mu: weight of MSE(fc(x), representation) (Eq. 18)
        omega: weight of BCE(fch(x), b) (Eq. 18)
        similarity: lambda, weight of L_s: the cosines of pairs of bi-half codes of fc(x) matched to their
            representations' cosines (BiHalf's objective on g(x)); 0: none, as the paper
        gamma: weight of L_p, the pull of fc(x) towards its bi-half codes (every bit half +1, half -1 in a batch;
            BiHalf's gamma: 6); 0: none, as the paper
        steps: Adam steps, whatever the dataset's size
        batch_size: items per Adam step
        lr: Adam's learning rate
        negative_slope: LeakyReLU slope (Eq. 10)
        dropout: mlp: the probability of dropping each hidden unit in training (Table 2: 0)
        seed: initialisation, batch order and augmentations
    """

    @checked
    def __init__(
        self,
        *,
        network: Literal["mlp", "cnn"] = "mlp",
        input: Literal["features", "graph"] = "graph",
        target: Literal["representation", "rotated"] = "rotated",
        input_p: Unit = 0.3,
        mu: NonNegative = 0.8,
        omega: NonNegative = 0.2,
        similarity: NonNegative = 2.0,
        gamma: NonNegative = 6.0,
        steps: Steps = 600,
        batch_size: BatchSize = 256,
        lr: Positive = 0.001,
        negative_slope: Unit = 0.2,
        dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0,
        seed: Seed = 0,
    ):
        self.network, self.input, self.target, self.input_p = network, input, target, input_p
        self.mu, self.omega, self.similarity, self.gamma = mu, omega, similarity, gamma
        self.steps, self.batch_size, self.lr, self.negative_slope = steps, batch_size, lr, negative_slope
        self.dropout, self.seed = dropout, seed

    def targets(self, representations: np.ndarray, bits: int) -> Targets:
        """What fc(x) fits at ``bits`` bits (``target``) and the representations themselves, as ``Targets``."""
        z = np.asarray(representations, dtype=np.float32)
        fit = rotated_targets(z, self.seed, bits) if self.target == "rotated" else z
        return Targets(torch.from_numpy(fit), torch.from_numpy(z))

    def loss(self, fc: torch.Tensor, targets: Targets) -> dict[str, torch.Tensor]:
        """L2 with its terms (``LOSS_TERMS``), from fc(x) (B, g) and the batch's ``targets``.

        BCE needs probabilities: tanh's range (-1, 1) is mapped to (0, 1) by (tanh(a) + 1) / 2, which equals
        sigmoid(2a), so the BCE is computed from the logits 2 * fc(x), the numerically stable form. The
        targets b follow Eq. 16 with Eq. 19's rule at zero (fch = 0 gives 1), and carry no gradient. The
        similarity and pull terms are computed whatever their weights, so that every run records them.
        """
        mse = F.mse_loss(fc, targets.fit)
        bits = (torch.tanh(fc) >= 0).to(fc.dtype).detach()
        bce = F.binary_cross_entropy_with_logits(2.0 * fc, bits)
        halves, pull = bi_half_codes(fc)
        similarity = paired_cosine_loss(halves, targets.reference)
        loss = self.mu * mse + self.omega * bce + self.similarity * similarity + self.gamma * pull
        return {"loss": loss, "mse": mse, "bce": bce, "similarity": similarity, "pull": pull}

    def fit(
        self, features: torch.Tensor, targets: Targets, rows: torch.Tensor | None = None
    ) -> tuple[HashNet, list[dict[str, float]]]:
        """Fit a HashNet on training features (N, D) to their ``targets`` (g bits); one record per epoch.
        ``rows`` (N,): the training items' rows of a larger ``features`` (every item's inputs), read a batch at a
        time instead of copied.

        Each epoch shuffles the items (seeded) into N // batch_size equal batches, one Adam step each, for
        ``steps`` steps in all: the last epoch stops where the steps run out.
        """
        rows = torch.arange(len(features)) if rows is None else rows
        if len(rows) < 2:
            raise GraphhashError("hash: batch normalisation needs at least 2 training items")
        torch.manual_seed(self.seed)
        model = HashNet(features.shape[1], targets.fit.shape[1], negative_slope=self.negative_slope,
                        dropout=self.dropout)  # fmt: skip
        optimiser = torch.optim.Adam(model.parameters(), lr=self.lr)
        order_rng = torch.Generator().manual_seed(self.seed)
        batches = max(1, len(rows) // self.batch_size)  # equal batches, none of a single item
        history: list[dict[str, float]] = []
        model.train()
        step = 0
        while step < self.steps:
            sums = dict.fromkeys(LOSS_TERMS, 0.0)
            seen = 0
            for index in torch.tensor_split(torch.randperm(len(rows), generator=order_rng), batches):
                if step == self.steps:
                    break
                terms = self.loss(model(features[rows[index]]), targets[index])
                adam_step(optimiser, terms, sums, len(index))
                seen += len(index)
                step += 1
            close_epoch(history, sums, seen, step, self.steps, "hash: epoch", "lower hash.lr, or check the features")
        return model, history


def adam_step(optimiser: torch.optim.Optimizer, terms: dict[str, torch.Tensor], sums: dict[str, float],
              count: int) -> None:  # fmt: skip
    """One Adam step on Eq. 18's loss; the batch's terms are added to the epoch's ``sums``, weighted by its
    ``count`` of items."""
    optimiser.zero_grad(set_to_none=True)
    terms["loss"].backward()
    optimiser.step()
    for key in sums:
        sums[key] += terms[key].item() * count


def close_epoch(history: list[dict[str, float]], sums: dict[str, float], seen: int, step: int, steps: int,
                what: str, hint: str) -> None:  # fmt: skip
    """Append the epoch's mean terms to ``history`` and log them (``what``: "hash: epoch"); a loss that is not
    finite stops training with one line ending in ``hint``."""
    history.append({"epoch": len(history) + 1, "step": step, **{key: value / seen for key, value in sums.items()}})
    log.info("%s %d, step %d/%d, loss %.5f", what, len(history), step, steps, history[-1]["loss"])
    if not math.isfinite(history[-1]["loss"]):
        raise GraphhashError(f"hash: the loss became {history[-1]['loss']} in epoch {len(history)} (step {step}); "
                             f"{hint}")  # fmt: skip
