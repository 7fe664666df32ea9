"""The ``neighbours`` stage: every item's ``graph.nodes - 1`` nearest training items by cosine similarity."""

from __future__ import annotations

from pathlib import Path

from graphhash.files.features import read_features
from graphhash.files.neighbours import write_neighbours
from graphhash.graphs.knn import nearest_training
from graphhash.params.graph import GraphParams


def find_neighbours(features_path: Path, graph: GraphParams, dest: Path) -> None:
    fs = read_features(features_path)
    write_neighbours(dest, nearest_training(fs.features, fs.train, graph.nodes - 1))
