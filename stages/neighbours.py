"""DVC stage ``neighbours``: every item's graph.nodes - 1 nearest training items, for kNN graphs, found by
neighbours.method (paths: dvc.yaml)."""

from pathlib import Path

from graphhash.params import load_params
from graphhash.params.graph import GraphParams
from graphhash.params.neighbours import NeighboursParams
from graphhash.pipeline.neighbours import find_neighbours
from graphhash.pipeline.stage import run_stage


def main(args) -> None:
    graph, neighbours = load_params(GraphParams, NeighboursParams)
    find_neighbours(args.features, graph, args.neighbours, neighbours)


if __name__ == "__main__":
    run_stage(main, __doc__, features=Path, neighbours=Path)
