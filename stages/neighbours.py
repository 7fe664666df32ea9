"""DVC stage ``neighbours``: every item's graph.nodes - 1 nearest training items, for kNN graphs (paths: dvc.yaml)."""

from pathlib import Path

from graphhash.params import load_params
from graphhash.params.graph import GraphParams
from graphhash.pipeline.neighbours import find_neighbours
from graphhash.pipeline.stage import run_stage


def main(args) -> None:
    (graph,) = load_params(GraphParams)
    find_neighbours(args.features, graph, args.neighbours)


if __name__ == "__main__":
    run_stage(main, __doc__, features=Path, neighbours=Path)
