"""DVC stage ``hash@<filter>-<bits>``: the NRDH hash-function network and the codes of the query and
database items, fitted to the representations of one graph filter.

Reads: params.yaml (hash.*; represent.rho and batch_nodes for hash.input: graph), data/features.h5,
data/neighbours.h5, data/representations/<filter>-<bits>.h5. Writes:
data/codes/nrdh-<filter>-<bits>.h5, models/nrdh-<filter>-<bits>.pt and .json, metrics/hash/<filter>-<bits>.csv
(loss per epoch).
"""

import sys
from pathlib import Path

from graphhash.cli import stage
from graphhash.nrdh import hash_codes
from graphhash.params import load_params


@stage
def main() -> None:
    name, bits = sys.argv[1], int(sys.argv[2])
    params = load_params("params.yaml", "hash", "represent")
    method = f"nrdh-{name}"
    hash_codes(
        Path("data/features.h5"),
        Path(f"data/representations/{name}-{bits}.h5"),
        bits,
        params.hash,
        method=method,
        codes_path=Path(f"data/codes/{method}-{bits}.h5"),
        model_stem=Path(f"models/{method}-{bits}"),
        losses=Path(f"metrics/hash/{name}-{bits}.csv"),
        graph=params.represent,
        neighbours_path=Path("data/neighbours.h5"),
    )


if __name__ == "__main__":
    main()
