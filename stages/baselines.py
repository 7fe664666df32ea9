"""DVC stage ``baselines@<bits>``: LSH, PCAH, ITQ and SH codes on the same features.

Reads: params.yaml (baselines.*), data/features.h5. Writes: data/codes/{lsh,pcah,itq,sh}-<bits>.h5.
"""

import sys
from pathlib import Path

from graphhash.baselines import write_baseline_codes
from graphhash.cli import stage
from graphhash.params import load_params


@stage
def main() -> None:
    params = load_params("params.yaml", "baselines")
    write_baseline_codes(Path("data/features.h5"), int(sys.argv[1]), params.baselines, Path("data/codes"))


if __name__ == "__main__":
    main()
