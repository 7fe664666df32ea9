"""The ``neighbours`` stage: every item's ``graph.nodes - 1`` nearest training items by cosine similarity (for paired
data, the weighted mean of the modalities' cosines: ``graphs.knn.joint_features``)."""

from __future__ import annotations

import logging
from pathlib import Path

from graphhash.files.features import open_features
from graphhash.files.neighbours import write_neighbours
from graphhash.graphs.knn import joint_features
from graphhash.graphs.search import resolve_method, search_neighbours
from graphhash.params.graph import GraphParams
from graphhash.params.neighbours import NeighboursParams
from graphhash.runtime import require_memory

log = logging.getLogger(__name__)


def find_neighbours(
    features_path: Path, graph: GraphParams, dest: Path, params: NeighboursParams | None = None
) -> None:
    """Write ``dest``, the neighbours file of the features file, searched by ``params`` (default: the defaults)."""
    params = params or NeighboursParams()
    with open_features(features_path) as fs:  # the rows are read as the method needs them
        fs.require_memory(fs.train, 2, "the training rows and their unit copy")
        require_memory(
            "graph.nodes",
            len(fs.ids) * (graph.nodes - 1) * 12,
            f"the {graph.nodes - 1:,} nearest training items of {len(fs.ids):,} items",
        )
        method = resolve_method(params.method, int(fs.train.sum()))
        log.info("neighbours: %d per item among %d training items, %s", graph.nodes - 1, fs.train.sum(), method)
        features = joint_features(fs, graph.weights)
        found = search_neighbours(features, fs.train, graph.nodes - 1, method, params.options(method))
    write_neighbours(dest, found)
