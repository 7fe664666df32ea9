"""Stage 2 of NRDH (section 3.2): the hash-function network, fitted to the node representations.

On the frozen backbone features x (Table 2's head):

    fc(x) = BN(W3 f2(x)),  f2 = BN(LeakyReLU(W2 f1)),  f1 = BN(LeakyReLU(W1 x))    in -> 256 -> 64 -> g
    fch(x) = tanh(fc(x))                                                          (Eq. 13)
    L2 = mu * MSE(fc(x), g(x)) + omega * BCE(fch(x), b),   b = 0.5 * (sign(fch(x)) + 1)   (Eqs. 15-18)
    code bit = 1 if fch(x) >= 0 else 0                                            (Eq. 19)

The paper names PyTorch's MSELoss and BCELoss for Eqs. 15 and 17, so both are means over elements.
"""

from __future__ import annotations

import json
import logging
import pickle
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from graphhash.atomic import write_json, write_state_dict
from graphhash.baselines import ITQ
from graphhash.errors import GraphhashError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HashNetConfig:
    in_dim: int
    bits: int
    hidden: tuple[int, int] = (256, 64)
    negative_slope: float = 0.2


class HashNet(nn.Module):
    """fc(x) of Table 2: (B, in_dim) -> (B, bits), before tanh."""

    def __init__(self, config: HashNetConfig):
        super().__init__()
        h1, h2 = config.hidden
        slope = config.negative_slope
        self.config = config
        self.layers = nn.Sequential(
            nn.Linear(config.in_dim, h1), nn.LeakyReLU(slope), nn.BatchNorm1d(h1),
            nn.Linear(h1, h2), nn.LeakyReLU(slope), nn.BatchNorm1d(h2),
            nn.Linear(h2, config.bits), nn.BatchNorm1d(config.bits),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def hash_loss(fc: torch.Tensor, target: torch.Tensor, mu: float, omega: float) -> dict[str, torch.Tensor]:
    """L2 of Eq. 18 with its terms, from fc(x) (B, g) and the node representations g(x) (B, g).

    BCE needs probabilities: tanh's range (-1, 1) is mapped to (0, 1) by (tanh(a) + 1) / 2, which equals
    sigmoid(2a), so the BCE is computed from the logits 2 * fc(x), the numerically stable form. The
    targets b follow Eq. 16 with Eq. 19's rule at zero (fch = 0 gives 1), and carry no gradient.
    """
    mse = F.mse_loss(fc, target)
    targets = (torch.tanh(fc) >= 0).to(fc.dtype).detach()
    bce = F.binary_cross_entropy_with_logits(2.0 * fc, targets)
    return {"loss": mu * mse + omega * bce, "mse": mse, "bce": bce}


def rotated_targets(representations: np.ndarray, seed: int, iterations: int = 50) -> np.ndarray:
    """The representations centred and rotated by ITQ (Gong and Lazebnik): (N, g) -> (N, g) float32.

    Bits are the signs of fc(x), and fc(x) is fitted to the representations, so each bit is the sign of one
    representation dimension. The autoencoder's dimensions are neither centred nor uncorrelated: bits come
    out unbalanced and redundant. A rotation changes no distance between representations, only the
    directions whose signs become bits: PCA (all g directions) decorrelates them, and ITQ's rotation then
    minimises the quantisation error ||B - V R||^2, which spreads variance evenly over the bits.
    """
    z = np.asarray(representations, dtype=np.float64)
    itq = ITQ(z.shape[1], iterations, seed).fit(z)
    return ((z - itq.mean_) @ itq.components_ @ itq.rotation_).astype(np.float32)


def train_hashnet(
    features: torch.Tensor, representations: torch.Tensor, params: SimpleNamespace
) -> tuple[HashNet, list[dict[str, float]]]:
    """Fit a HashNet on training features (N, D) to their representations (N, g); one record per epoch."""
    if len(features) < 2:
        raise GraphhashError("hash: batch normalisation needs at least 2 training items")
    torch.manual_seed(params.seed)
    model = HashNet(HashNetConfig(features.shape[1], representations.shape[1], negative_slope=params.negative_slope))
    optimiser = torch.optim.Adam(model.parameters(), lr=params.lr)
    order_rng = torch.Generator().manual_seed(params.seed)
    batches = max(1, len(features) // params.batch_size)  # equal batches, none of a single item
    history = []
    model.train()
    for epoch in range(1, params.epochs + 1):
        sums = dict.fromkeys(("loss", "mse", "bce"), 0.0)
        for index in torch.tensor_split(torch.randperm(len(features), generator=order_rng), batches):
            terms = hash_loss(model(features[index]), representations[index], params.mu, params.omega)
            optimiser.zero_grad(set_to_none=True)
            terms["loss"].backward()
            optimiser.step()
            for key in sums:
                sums[key] += terms[key].item() * len(index)
        history.append({"epoch": epoch, **{key: value / len(features) for key, value in sums.items()}})
        log.info("hash: epoch %d/%d, loss %.5f", epoch, params.epochs, history[-1]["loss"])
    return model, history


@torch.no_grad()
def encode(model: HashNet, features: np.ndarray | torch.Tensor, batch_size: int = 4096) -> np.ndarray:
    """Binary codes (n, bits) as bools: bit = fch(x) >= 0 (Eq. 19), with batch norm in inference mode."""
    model.eval()
    x = torch.as_tensor(np.asarray(features, dtype=np.float32))
    codes = [torch.tanh(model(chunk)) >= 0 for chunk in x.split(batch_size)]
    return torch.cat(codes).numpy() if codes else np.zeros((0, model.config.bits), dtype=bool)


def save_hashnet(model: HashNet, stem: str | Path, extra: dict | None = None) -> None:
    """``<stem>.pt`` (state dict) and ``<stem>.json`` (the config to rebuild it, plus ``extra``)."""
    stem = Path(stem)
    write_state_dict(stem.with_suffix(".pt"), model.state_dict())
    write_json(stem.with_suffix(".json"), {"model": "nrdh-hashnet", **asdict(model.config), **(extra or {})})


def load_hashnet(stem: str | Path) -> HashNet:
    """Rebuild a saved HashNet (``weights_only=True``: a checkpoint cannot run code)."""
    stem = Path(stem).with_suffix("")
    try:
        raw = json.loads(stem.with_suffix(".json").read_text(encoding="utf-8"))
        config = HashNetConfig(raw["in_dim"], raw["bits"], tuple(raw["hidden"]), raw["negative_slope"])
        model = HashNet(config)
        model.load_state_dict(torch.load(stem.with_suffix(".pt"), map_location="cpu", weights_only=True))
    except (OSError, KeyError, ValueError, RuntimeError, pickle.UnpicklingError) as exc:
        raise GraphhashError(f"{stem}: cannot load the hash model ({exc})") from exc
    return model.eval()
