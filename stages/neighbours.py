"""DVC stage ``neighbours``: every item's batch_nodes - 1 nearest training items by cosine similarity.

Reads: params.yaml (represent.batch_nodes), data/features.h5. Writes: data/neighbours.h5 (the kNN graphs of
``represent.graph: knn`` and ``hash.input: graph``).
"""

from pathlib import Path

from graphhash.cli import stage
from graphhash.neighbours import write_neighbours
from graphhash.params import load_params


@stage
def main() -> None:
    params = load_params("params.yaml", "represent")
    write_neighbours(Path("data/features.h5"), params.represent.batch_nodes - 1, Path("data/neighbours.h5"))


if __name__ == "__main__":
    main()
