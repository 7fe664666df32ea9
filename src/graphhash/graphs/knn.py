"""Every item's nearest training items: the kNN graph behind ``represent.graph: knn`` and ``hash.input: graph``.

The paper builds each graph from M nodes drawn at random, so on a dataset of ten classes a node shares a
class with about one of its nine graph-mates. Here a node's graph can instead be the node and its M - 1
nearest training items by cosine similarity (the same similarity as Eq. 2), for every item: training items
(excluding the item itself), and queries and database items, whose graph then exists at inference too.

The ``neighbours`` stage writes them (``graphhash.files.neighbours``) for every item of the features file:
row numbers among the training items, most similar first, with their similarities.

Ties in similarity are resolved the way ``torch.topk`` resolves them (deterministic for the same inputs),
then the K chosen are ordered by decreasing similarity, equal similarities by increasing row.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import torch

from graphhash.errors import GraphhashError
from graphhash.files.features import FeatureSet, read_rows
from graphhash.files.neighbours import Neighbours
from graphhash.graphs.batch import nrdh_propagation


def unit_rows(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Each row divided by its norm, float32 (a zero row stays zero)."""
    x = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    return x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)


def unit_features(features: np.ndarray, mask: np.ndarray | None = None, block_size: int = 2048) -> np.ndarray:
    """The rows of ``features`` (an array or an open features file's dataset) where ``mask`` is true (every row:
    None), each divided by its norm as ``unit_rows`` does: one new float32 array, read by ``read_rows`` and
    normalised in place a block at a time (never the rows and a unit copy of them besides)."""
    unit = read_rows(features, mask)
    rows = torch.from_numpy(unit)
    for start in range(0, len(unit), block_size):
        rows[start : start + block_size] = unit_rows(rows[start : start + block_size])
    return unit


def joint_features(fs: FeatureSet, weights: dict[str, float]) -> np.ndarray:
    """The features whose cosine similarity is the similarity of two items: a single modality's own (the file's
    dataset itself, unread), or for several modalities, each modality's unit rows scaled by sqrt(w_m), side by side.
    Their cosine is then sum_m w_m cos_m(x, y) with the weights ``weights`` ({modality: w}, every modality or none:
    equal) normalised to sum 1, the weighted mean of the items' cosines in each modality. (N, sum_m D_m) float32.
    """
    if len(fs.views) == 1:
        return fs.features
    named, held = set(weights), set(fs.views)
    if named and named != held:
        raise GraphhashError(f"graph.weights: names {', '.join(sorted(named))}, but {fs.path or 'the features file'} "
                             f"holds the modalities {', '.join(fs.views)}: name every one or none")  # fmt: skip
    raw = np.array([weights.get(modality, 1.0) for modality in fs.views], dtype=np.float64)
    if raw.sum() <= 0:
        raise GraphhashError("graph.weights: at least one modality needs a positive weight")
    scale = np.sqrt(raw / raw.sum())
    return np.concatenate([unit_features(view) * np.float32(w) for view, w in zip(fs.views.values(), scale,
                                                                                   strict=True)], axis=1)  # fmt: skip


def own_rows(train: np.ndarray) -> np.ndarray:
    """Each item's row among the training items (``train`` is the (N,) mask), -1 for the others."""
    rows = np.full(len(train), -1, dtype=np.int64)
    rows[train] = np.arange(int(train.sum()))
    return rows


class TrainingSet:
    """The training items' features, held once: find any items' nearest training items and propagate their
    features over those kNN graphs (the neighbours and hash stages for every item of a features file; search
    for new queries).

    Ties in similarity are resolved the way ``torch.topk`` resolves them, then the K chosen are ordered by
    decreasing similarity, equal similarities by increasing row.
    """

    def __init__(self, training: np.ndarray):
        self.features = torch.from_numpy(np.ascontiguousarray(training, dtype=np.float32))

    def __len__(self) -> int:
        return len(self.features)

    @cached_property
    def unit(self) -> torch.Tensor:
        return unit_rows(self.features)

    def check_k(self, k: int) -> None:
        self.check_count(k, len(self))

    @staticmethod
    def check_count(k: int, training_items: int) -> None:
        """``k`` neighbours per node need more than ``k`` training items: one line otherwise."""
        if not 1 <= k < training_items:
            raise GraphhashError(f"graph.nodes: {k} neighbours per node need more than {k} training items "
                                 f"(there are {training_items})")  # fmt: skip

    def nearest(
        self, features: np.ndarray, k: int, own_row: np.ndarray | None = None, block_size: int = 2048
    ) -> Neighbours:
        """The ``k`` training items most cosine-similar to each row of ``features`` (N, D).

        ``own_row`` (N,) gives each row's own row among the training items (-1: not a training item): an item
        is never its own neighbour. Rows are processed in blocks of ``block_size``, so memory stays at one
        (block, N_train) similarity matrix.
        """
        self.check_k(k)
        own_row = np.full(len(features), -1, dtype=np.int64) if own_row is None else own_row
        indices = np.empty((len(features), k), dtype=np.int64)
        similarities = np.empty((len(features), k), dtype=np.float32)
        for start in range(0, len(features), block_size):
            stop = min(start + block_size, len(features))
            sims = unit_rows(features[start:stop]) @ self.unit.T
            own = torch.from_numpy(own_row[start:stop])
            is_train = own >= 0
            sims[torch.arange(stop - start)[is_train], own[is_train]] = -torch.inf  # never its own neighbour
            values, chosen = sims.topk(k, dim=1)
            values, chosen = values.numpy(), chosen.numpy()
            order = np.lexsort((chosen, -values), axis=1)  # by similarity, then by row
            indices[start:stop] = np.take_along_axis(chosen, order, 1)
            similarities[start:stop] = np.take_along_axis(values, order, 1)
        return Neighbours(indices, similarities)

    def graph_rows(
        self, features: np.ndarray, neighbours: Neighbours, rho: float, p: float, block_size: int = 4096
    ) -> np.ndarray:
        """Row 0 of U' (Eqs. 2-4) of every row's kNN graph: the weights of the item itself and of its K
        neighbours, (N, K + 1) float32.

        For item i with neighbours j_1..j_K (training items), the graph holds i first, then the j's; Eq. 3
        links nodes whose cosine exceeds ``rho`` and Eq. 4 keeps ``p`` for i and shares 1 - p among i's
        links (weights 1, 0, ..., 0 when none is linked).
        """
        rows = np.empty((len(features), neighbours.indices.shape[1] + 1), dtype=np.float32)
        for start in range(0, len(features), block_size):
            stop = min(start + block_size, len(features))
            rows[start:stop] = nrdh_propagation(self._graphs(features, neighbours, start, stop), rho, p)[:, 0]
        return rows

    def graph_inputs(
        self, features: np.ndarray, neighbours: Neighbours, rho: float, p: float, block_size: int = 4096
    ) -> np.ndarray:
        """Every row's features propagated over its own kNN graph: ``graph_rows`` times the graph's features,
        p x_i + (1 - p) * mean of the linked neighbours (x_i alone when none is linked). This is how a query
        uses the graph at inference: its input to the hash network mixes in its nearest database items.
        (N, D) -> (N, D) float32.
        """
        return self._weighted(self.graph_rows(features, neighbours, rho, p, block_size), features, neighbours,
                              block_size)  # fmt: skip

    def graph_parts(
        self, features: np.ndarray, neighbours: Neighbours, rho: float, p: float, block_size: int = 4096
    ) -> tuple[np.ndarray, np.ndarray]:
        """``graph_inputs`` in two parts, the weight of the item itself (N,) and the weighted sum of its
        neighbours' features (N, D): the CNN hash network replaces x_i with its own embedding of image i."""
        rows = self.graph_rows(features, neighbours, rho, p, block_size)
        own, rows[:, 0] = rows[:, 0].copy(), 0.0
        return own, self._weighted(rows, features, neighbours, block_size)

    def _graphs(self, features: np.ndarray, neighbours: Neighbours, start: int, stop: int) -> torch.Tensor:
        """The kNN graphs of rows start..stop: each row's features, then its neighbours', (B, K + 1, D)."""
        own = torch.from_numpy(np.ascontiguousarray(features[start:stop], dtype=np.float32))
        return torch.cat([own[:, None], self.features[torch.from_numpy(neighbours.indices[start:stop])]], dim=1)

    def _weighted(self, rows: np.ndarray, features: np.ndarray, neighbours: Neighbours, block_size: int) -> np.ndarray:
        out = np.empty(features.shape, dtype=np.float32)
        for start in range(0, len(features), block_size):
            stop = min(start + block_size, len(features))
            row = torch.from_numpy(rows[start:stop])[:, None]  # (B, 1, K + 1)
            out[start:stop] = (row @ self._graphs(features, neighbours, start, stop))[:, 0].numpy()
        return out


def nearest_training(features: np.ndarray, train: np.ndarray, k: int, block_size: int = 2048) -> Neighbours:
    """The ``k`` training items most cosine-similar to each row of ``features`` (N, D); ``train`` is the (N,) mask.

    A training item is never its own neighbour (``TrainingSet.nearest``); ``graphhash.graphs.search`` finds
    them approximately too.
    """
    return TrainingSet(read_rows(features, train)).nearest(features, k, own_rows(train), block_size)


def knn_graphs(nodes: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """Each node's graph: itself, then its nearest training items: (G,) and (N, K) -> (G, K + 1) training rows.

    ``nodes`` and ``indices`` both count training rows here (the graphs of training items).
    """
    return torch.cat([nodes[:, None], indices[nodes]], dim=1)


def graph_inputs(
    features: np.ndarray, train: np.ndarray, neighbours: Neighbours, rho: float, p: float, block_size: int = 4096
) -> np.ndarray:
    """Every item's features propagated over its own kNN graph (``TrainingSet.graph_inputs``); ``train`` is the
    (N,) mask of the training items that ``neighbours`` counts; ``features`` may be an open features file's
    dataset, read a block at a time. (N, D) -> (N, D) float32."""
    return TrainingSet(read_rows(features, train)).graph_inputs(features, neighbours, rho, p, block_size)
