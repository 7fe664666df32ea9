"""DVC stage ``hash@<bits>``: the NRDH hash-function network and the codes of the query and database items.

Reads: params.yaml (hash.*), data/features.h5, data/representations/<bits>.h5. Writes:
data/codes/nrdh-<bits>.h5, models/nrdh-<bits>.pt and .json, metrics/hash/<bits>.csv (loss per epoch).
"""

import sys
from pathlib import Path

from graphhash.cli import stage
from graphhash.nrdh import hash_codes
from graphhash.params import load_params


@stage
def main() -> None:
    bits = int(sys.argv[1])
    params = load_params("params.yaml", "hash")
    hash_codes(
        Path("data/features.h5"),
        Path(f"data/representations/{bits}.h5"),
        bits,
        params.hash,
        codes_path=Path(f"data/codes/nrdh-{bits}.h5"),
        model_stem=Path(f"models/nrdh-{bits}"),
        losses=Path(f"metrics/hash/{bits}.csv"),
    )


if __name__ == "__main__":
    main()
