"""DVC stage ``represent@<bits>``: NRDH node representations from the graph autoencoder.

Reads: params.yaml (represent.*), data/features.h5. Writes: data/representations/<bits>.h5,
models/gcnae-<bits>.pt and .json, metrics/represent/<bits>.csv (loss per epoch).
"""

import sys
from pathlib import Path

from graphhash.cli import stage
from graphhash.nrdh import represent
from graphhash.params import load_params


@stage
def main() -> None:
    bits = int(sys.argv[1])
    params = load_params("params.yaml", "represent")
    represent(
        Path("data/features.h5"),
        bits,
        params.represent,
        out=Path(f"data/representations/{bits}.h5"),
        model_stem=Path(f"models/gcnae-{bits}"),
        losses=Path(f"metrics/represent/{bits}.csv"),
    )


if __name__ == "__main__":
    main()
