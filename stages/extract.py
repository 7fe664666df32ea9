"""DVC stage ``extract``: pretrained backbone features for every item of the manifest.

Reads: params.yaml (extract.*), data/manifest.json. Writes: data/features.h5.
"""

from graphhash.cli import stage
from graphhash.extract import extract
from graphhash.manifest import Manifest
from graphhash.params import load_params


@stage
def main() -> None:
    params = load_params("params.yaml", "extract")
    extract(Manifest.load("data/manifest.json"), params.extract, "data/features.h5")


if __name__ == "__main__":
    main()
