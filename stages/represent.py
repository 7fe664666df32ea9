"""DVC stage ``represent@<filter>-<bits>``: NRDH node representations from the graph autoencoder.

Reads: params.yaml (represent.*), data/features.h5, data/neighbours.h5 (with represent.graph: knn).
Writes: data/representations/<filter>-<bits>.h5, models/gcnae-<filter>-<bits>.pt and .json,
metrics/represent/<filter>-<bits>.csv (loss per epoch).
"""

import sys
from pathlib import Path

from graphhash.cli import stage
from graphhash.nrdh import represent
from graphhash.params import load_params, with_filter


@stage
def main() -> None:
    name, bits = sys.argv[1], int(sys.argv[2])
    params = load_params("params.yaml", "represent")
    represent(
        Path("data/features.h5"),
        bits,
        with_filter(params.represent, name),
        out=Path(f"data/representations/{name}-{bits}.h5"),
        model_stem=Path(f"models/gcnae-{name}-{bits}"),
        losses=Path(f"metrics/represent/{name}-{bits}.csv"),
        neighbours_path=Path("data/neighbours.h5"),
    )


if __name__ == "__main__":
    main()
