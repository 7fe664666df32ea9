"""GCH (Xu, Li, Yan, Deng & Liu, "Graph Convolutional Network Hashing for Cross-Modal Retrieval", IJCAI 2019):
supervised cross-modal hashing with a semantic encoder as teacher and a GCN over the batch's label graph.

Paired training items i = 1..n have an image x_i, a text y_i and labels l_i (one class, as a one-hot row, or a 0/1
row of several); L (n, C) stacks them. S_ij = 1 iff items i and j share a label (for class ids, l_i == l_j).
Within a batch of N_b items:

- Semantic encoder (the teacher), an MLP on the labels: g^l = G^l(l), H^l = tanh(W_h g^l) (bits), and a label
  reconstruction L^l_hat = sigmoid(W_c H^l). With Gamma^l_ij = 1/2 <H^l_i, H^l_j> (Eqs. 2-3):

      L^l = alpha J(Gamma^l) + gamma mse(L^l_hat, L),   J(Gamma) = mean_ij (log(1 + e^Gamma_ij) - S_ij Gamma_ij)

  J is the negative log-likelihood of S under p(S_ij = 1) = sigmoid(Gamma_ij); mse is the mean over elements.
- Feature encoders, one per modality (Eq. 4): f^* = E^*(*) (hidden), H^* = tanh(W_h f^*) (bits), and
  L^*_hat = sigmoid(W_c f^*), for * = x (image), y (text). The paper's image encoder is a CNN on pixels; here
  both are MLPs on the given (precomputed) features, each feature standardised by its training mean and
  standard deviation. Eq. 5, with the teacher's codes H^l and the beacon H^b constant:

      L^* = alpha J(Gamma^{l*}) + beta mse(H^b, H^*) + gamma mse(L^*_hat, L) + eta mse(sign(H^l), H^*),
      Gamma^{l*}_ij = 1/2 <H^l_i, H^*_j>

  The last term, the pull of H^* towards the teacher's binary codes, is the public code's quantisation term
  (``Loss_I_g``/``Loss_I_lab``: mse(Hsh_I, B) with B = sign(H^l)); the report's Eq. 5 has no explicit one.
- GCN fusion (Eqs. 6-8). The batch's features are fused by cross-modal attention,

      f_r = 1/2 (softmax(f^y f^x^T / sqrt(d)) f^x + softmax(f^x f^y^T / sqrt(d)) f^y)    (softmax along rows)

  (Eq. 6's W~ = norm(f^x f^y^T); "norm" is unspecified: here the scaled dot-product attention of Vaswani et al.,
  their [19]; the public code divides by the largest entry, which scales f_r with the batch size). Then two
  graph convolutions over the batch's label graph, A_ij = S_ij for i != j, A~ = A + I, D~_ii = sum_j A~_ij:

      A_hat = D~^-1/2 A~ D~^-1/2,   H1 = ReLU(A_hat f_r W1),   H^b = tanh(A_hat H1 W2),   L^G_hat = sigmoid(W_c H^b)
      L^G = alpha J(Gamma^G) + gamma mse(L^G_hat, L),   Gamma^G_ij = 1/2 <H^b_i, H^b_j>

  (Eq. 7 writes A(i, j) = l_i l_j^T, the number of shared labels, as the public code does; the binary S used
  here is the same graph for one class per item, and weighs every shared-label neighbour alike otherwise.)
- Codes (Eq. 10): b = sign(H^*) of the modality's encoder (bit = H^* >= 0); the teacher and the GCN serve only
  in training.

Training (Procedure 1; Eq. 9's L^x + L^y + L^l + L^G, four losses of equal importance, each minimised over its
own parameters): every round draws a batch (the items reshuffled by the seed each pass, cut into batches of
``batch_size``, the remainder left out) and makes, in order, one Adam step of the teacher on L^l, one of the GCN
on L^G (on the encoders' current features, held constant), then one of both feature encoders on L^x + L^y with
the GCN's updated beacon H^b. Procedure 1 updates the feature encoders twice per round, guided by the teacher
before the GCN step and by the beacon after it; here once, after it, on the whole of Eq. 5 (both guides at once).
The weights alpha, gamma are shared by the four losses (the report reuses its beta for the label terms of Eqs. 3
and 8). Sums over pairs and elements are means, as in the public code. ``losses_`` holds each loss per round.
Eq. 8 ties the beacon to S alone, not to the teacher, so the two guides of Eq. 5 may settle on different codes for
a class (on Wiki, the beacon's and the teacher's bits agreed 54% of the time after training); a teacher-guided
Gamma^G_ij = 1/2 <H^l_i, H^b_j> agreed more (64%) but retrieved worse on a validation split, so Eq. 8 stays as
written.

Every MLP is Linear-BatchNorm-LeakyReLU(0.2) twice (``hidden`` wide; the public code's 512, its SEMANTIC_EMBED),
then its heads; weights start from torch's defaults drawn from the seed. float32 on the CPU, one thread:
the same seed gives the same bytes. ``supervised`` tells the pipeline that ``fit`` takes the labels.

Shapes: views {image: (n, D_x), text: (n, D_y)} (the dict's order: image first, then text); labels (n,) integer
class ids or (n, C) 0/1; ``encode(x, modality)`` (m, D_m) -> bool (m, bits).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from graphhash.errors import GraphhashError
from graphhash.hashers.crossmodal import CrossModalHasher
from graphhash.hyperparameters import BatchSize, Bits, LearningRate, NonNegative, Seed, Steps, Width, checked

if TYPE_CHECKING:
    import torch
    from torch import nn

SLOPE = 0.2  # LeakyReLU's negative slope (the public code's lrelu)
ENCODE_BLOCK = 4096  # items encoded at a time


def label_similarity(labels: np.ndarray) -> np.ndarray:
    """S (n, n) bool: items share a label. (n,) class ids: the same class; (n, C) 0/1: a common 1."""
    labels = np.asarray(labels)
    if labels.ndim == 1:
        return labels[:, None] == labels[None, :]
    members = (labels != 0).astype(np.float64)
    return members @ members.T > 0


def normalised_adjacency(similarity: np.ndarray) -> np.ndarray:
    """D~^-1/2 A~ D~^-1/2 (n, n) float64 for A~ = A + I, A the similarity graph without its self-loops."""
    adjacency = np.asarray(similarity, dtype=np.float64).copy()
    np.fill_diagonal(adjacency, 1.0)
    scale = 1.0 / np.sqrt(adjacency.sum(axis=1))
    return scale[:, None] * adjacency * scale[None, :]


def _modules(in_dims: dict[str, int], classes: int, hidden: int, bits: int) -> dict:
    """The teacher, the two feature encoders and the GCN, built from torch's current random state (plain
    ``nn.ModuleDict``s, so that a fitted GCH pickles; ``_encoded`` and ``_beacon`` are their forward passes)."""
    from torch import nn

    def encoder(in_dim: int, labels_from_code: bool) -> nn.ModuleDict:
        body = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.LeakyReLU(SLOPE),
            nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.LeakyReLU(SLOPE),
        )  # fmt: skip
        hash_layer = nn.Linear(hidden, bits)
        classify = nn.Linear(bits if labels_from_code else hidden, classes)
        return nn.ModuleDict({"body": body, "hash": hash_layer, "classify": classify})

    image, text = in_dims
    parts = {"semantic": encoder(classes, True), image: encoder(in_dims[image], False),
             text: encoder(in_dims[text], False)}  # fmt: skip
    first, second = nn.Linear(hidden, hidden, bias=False), nn.Linear(hidden, bits, bias=False)
    parts["graph"] = nn.ModuleDict({"first": first, "second": second, "classify": nn.Linear(bits, classes)})
    return parts


def _encoded(encoder: nn.ModuleDict, x: torch.Tensor, labels_from_code: bool = False) -> tuple[torch.Tensor, ...]:
    """An encoder's forward pass: (B, D) -> features f (B, hidden), codes H = tanh (B, bits), label predictions
    sigmoid (B, C), from the codes (the teacher) or from the features (the feature encoders)."""
    import torch

    features = encoder["body"](x)
    codes = torch.tanh(encoder["hash"](features))
    return features, codes, torch.sigmoid(encoder["classify"](codes if labels_from_code else features))


def _beacon(
    graph: nn.ModuleDict, fx: torch.Tensor, fy: torch.Tensor, adjacency: torch.Tensor
) -> tuple[torch.Tensor, ...]:
    """Eq. 6's attention fusion of (f^x, f^y) (B, hidden), then Eq. 7's two graph convolutions with the batch's
    A_hat (B, B): the beacon codes H^b (B, bits) and the label predictions L^G_hat (B, C)."""
    import torch

    scale = math.sqrt(fx.shape[1])
    fused = 0.5 * (torch.softmax(fy @ fx.T / scale, dim=1) @ fx + torch.softmax(fx @ fy.T / scale, dim=1) @ fy)
    first = torch.relu(adjacency @ graph["first"](fused))
    codes = torch.tanh(adjacency @ graph["second"](first))
    return codes, torch.sigmoid(graph["classify"](codes))


def _likelihood(theta: torch.Tensor, similarity: torch.Tensor) -> torch.Tensor:
    """J: mean_ij (log(1 + e^theta_ij) - S_ij theta_ij), the negative log-likelihood of S."""
    import torch.nn.functional as F

    return (F.softplus(theta) - similarity * theta).mean()


class GCH(CrossModalHasher):
    """GCH on paired image and text features with labels (the module docstring): ``fit(views, labels)``, then
    ``encode(x, modality)``, the signs of the modality's encoder. ``losses_``: each loss per round,
    by name (``semantic``, ``graph``, and the two modalities' own names; ``all``: their sum, Eq. 9).

    On Wiki (128-d SIFT bags of words and 10-d LDA topics; 2,173 training pairs, the 693 test pairs as queries),
    at the defaults, mAP@all image -> text 0.271, 0.294, 0.302 and text -> image 0.727, 0.736, 0.740 at 16, 32 and
    64 bits (seeds 0-2; CMFH: 0.227-0.252 and 0.218-0.245); a fit took about 55 s on one shared core. ``steps``
    was chosen on a held-out fifth of the training pairs (32 bits: 0.262, 0.268, 0.279 image -> text after 500,
    1,000, 2,000 rounds; text -> image 0.76 throughout); the weights' defaults are the paper's equal importance,
    none of alpha, beta, gamma in 0.3-3 moving validation mAP by more than 0.01 (eta = 0 lost 0.03).

    Args:
        steps: training rounds, each one batch and one Adam step of the teacher, the GCN and the feature encoders
        batch_size: items per round (the paper: 128); each batch is one graph
        lr: Adam's learning rate (every part)
        hidden: width of every MLP's hidden layers and of the GCN's (the public code: 512)
        alpha: weight of the pairwise likelihood J in every loss
        beta: weight of the beacon term mse(H^b, H^*) of the feature encoders (Eq. 5)
        gamma: weight of the label prediction mse(L_hat, L) in every loss
        eta: weight of the feature encoders' pull towards the teacher's binary codes, mse(sign(H^l), H^*)
    """

    method = "gch"
    taken_views = 2
    supervised = True

    @checked
    def __init__(
        self,
        bits: Bits,
        seed: Seed,
        *,
        steps: Steps = 2000,
        batch_size: BatchSize = 128,
        lr: LearningRate = 1e-3,
        hidden: Width = 512,
        alpha: NonNegative = 1.0,
        beta: NonNegative = 1.0,
        gamma: NonNegative = 1.0,
        eta: NonNegative = 1.0,
    ):
        super().__init__(bits, seed)
        self.steps, self.batch_size, self.lr, self.hidden = steps, batch_size, lr, hidden
        self.alpha, self.beta, self.gamma, self.eta = alpha, beta, gamma, eta

    def checked_labels(self, labels: np.ndarray | None, n: int) -> np.ndarray:
        """The labels as (n,) int64 class ids or an (n, C) bool matrix, or a one-line ``GraphhashError``."""
        if labels is None:
            raise GraphhashError(f"{self.name}: supervised; fit(views, labels) needs the training items' labels")
        try:
            labels = np.asarray(labels)
        except (TypeError, ValueError):
            raise GraphhashError(f"{self.name}: labels are not an array") from None
        if labels.ndim not in (1, 2) or (labels.ndim == 2 and labels.shape[1] == 0):
            raise GraphhashError(
                f"{self.name}: labels must be (n,) class ids or an (n, C) 0/1 matrix, not shape {labels.shape}"
            )
        if len(labels) != n:
            raise GraphhashError(f"{self.name}: {len(labels)} labels for {n} training items; one per item")
        if labels.ndim == 1:
            if not np.issubdtype(labels.dtype, np.integer):
                raise GraphhashError(f"{self.name}: (n,) labels must be integer class ids, not {labels.dtype}")
            return labels.astype(np.int64)
        if labels.dtype.kind not in "biuf" or not np.isin(labels, (0, 1)).all():
            raise GraphhashError(f"{self.name}: (n, C) labels must hold only 0 and 1")
        return labels.astype(bool)

    def fit(self, views: Mapping[str, np.ndarray], labels: np.ndarray | None = None) -> GCH:
        import torch

        from graphhash.runtime import single_threaded

        arrays = self.checked_views(views)
        n = len(next(iter(arrays.values())))
        labels = self.checked_labels(labels, n)
        targets = (labels[:, None] == np.unique(labels)[None, :]) if labels.ndim == 1 else labels
        self.means_ = {modality: x.mean(axis=0) for modality, x in arrays.items()}
        self.scales_ = {modality: _scale(x) for modality, x in arrays.items()}
        inputs = {modality: torch.as_tensor(self._standardised(x, modality)) for modality, x in arrays.items()}
        label_rows = torch.as_tensor(targets, dtype=torch.float32)
        image, text = arrays
        size = min(self.batch_size, n)
        found: dict[str, list[float]] = {"semantic": [], "graph": [], image: [], text: [], "all": []}
        with single_threaded(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            parts = _modules({m: x.shape[1] for m, x in arrays.items()}, targets.shape[1], self.hidden, self.bits)
            optimisers = {
                "semantic": torch.optim.Adam(parts["semantic"].parameters(), lr=self.lr),
                "graph": torch.optim.Adam(parts["graph"].parameters(), lr=self.lr),
                "encoders": torch.optim.Adam([*parts[image].parameters(), *parts[text].parameters()], lr=self.lr),
            }
            for part in parts.values():
                part.train()
            order_rng = torch.Generator().manual_seed(self.seed)
            while len(found["all"]) < self.steps:
                order = torch.randperm(n, generator=order_rng)
                for batch in order[: n - n % size].split(size):
                    if len(found["all"]) == self.steps:
                        break
                    similarity = label_similarity(labels[batch.numpy()])
                    terms = self._round(parts, optimisers, {m: x[batch] for m, x in inputs.items()},
                                        label_rows[batch], similarity)  # fmt: skip
                    for key, value in terms.items():
                        found[key].append(value)
                    found["all"].append(sum(terms.values()))
                    if not math.isfinite(found["all"][-1]):
                        raise GraphhashError(
                            f"{self.name}: the loss became {found['all'][-1]} in round {len(found['all'])}; lower lr"
                        )
            for part in parts.values():
                part.eval()
        self.encoders_ = {image: parts[image], text: parts[text]}
        self.teacher_, self.graph_ = parts["semantic"], parts["graph"]
        self.losses_ = {key: np.asarray(values) for key, values in found.items()}
        return self

    def _round(self, parts: dict, optimisers: dict, inputs: dict[str, torch.Tensor], label_rows: torch.Tensor,
               similarity: np.ndarray) -> dict[str, float]:  # fmt: skip
        """One round on one batch: the teacher's, the GCN's and the feature encoders' Adam steps, in that order."""
        import torch
        import torch.nn.functional as F

        image, text = inputs
        s = torch.as_tensor(similarity, dtype=torch.float32)
        adjacency = torch.as_tensor(normalised_adjacency(similarity), dtype=torch.float32)

        def step(key: str, loss: torch.Tensor) -> float:
            optimisers[key].zero_grad(set_to_none=True)
            loss.backward()
            optimisers[key].step()
            return loss.item()

        _, teacher, predicted = _encoded(parts["semantic"], label_rows, labels_from_code=True)
        terms = {"semantic": step("semantic", self.alpha * _likelihood(0.5 * teacher @ teacher.T, s)
                                  + self.gamma * F.mse_loss(predicted, label_rows))}  # fmt: skip
        teacher = teacher.detach()
        encoded = {modality: _encoded(parts[modality], inputs[modality]) for modality in (image, text)}
        fx, fy = encoded[image][0].detach(), encoded[text][0].detach()
        beacon, predicted = _beacon(parts["graph"], fx, fy, adjacency)
        terms["graph"] = step("graph", self.alpha * _likelihood(0.5 * beacon @ beacon.T, s)
                              + self.gamma * F.mse_loss(predicted, label_rows))  # fmt: skip
        with torch.no_grad():
            beacon, _ = _beacon(parts["graph"], fx, fy, adjacency)
        binary = torch.where(teacher >= 0, 1.0, -1.0)
        losses = {}
        for modality, (_, codes, predicted) in encoded.items():
            losses[modality] = (self.alpha * _likelihood(0.5 * teacher @ codes.T, s)
                                + self.beta * F.mse_loss(codes, beacon)
                                + self.gamma * F.mse_loss(predicted, label_rows)
                                + self.eta * F.mse_loss(codes, binary))  # fmt: skip
        step("encoders", losses[image] + losses[text])
        return {**terms, **{modality: loss.item() for modality, loss in losses.items()}}

    def _standardised(self, x: np.ndarray, modality: str) -> np.ndarray:
        return ((x - self.means_[modality]) / self.scales_[modality]).astype(np.float32)

    def project(self, x: np.ndarray, modality: str) -> np.ndarray:
        """Items of ``modality`` (n, D_m) -> H^* (n, bits) in (-1, 1), the encoder's tanh codes: bit = H^* >= 0."""
        import torch

        from graphhash.runtime import single_threaded

        x = self.checked_items(x, modality, getattr(self, "encoders_", None))
        if not np.isfinite(x).all():
            raise GraphhashError(f"{self.name}: {modality!r} items have NaN or infinite values")
        encoder = self.encoders_[modality]
        blocks = [np.zeros((0, self.bits))]
        with single_threaded(), torch.no_grad():
            for start in range(0, len(x), ENCODE_BLOCK):
                inputs = torch.as_tensor(self._standardised(x[start : start + ENCODE_BLOCK], modality))
                blocks.append(_encoded(encoder, inputs)[1].double().numpy())
        return np.concatenate(blocks)


def _scale(x: np.ndarray) -> np.ndarray:
    """Each feature's standard deviation, 1 where it is (nearly) constant."""
    std = x.std(axis=0)
    return np.where(std > 1e-12 * max(float(np.abs(x).max()), 1.0), std, 1.0)
