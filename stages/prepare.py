"""DVC stage ``prepare``: list the data source, split it, and write the manifest.

Reads: params.yaml (prepare.*) and the data the params point at. Writes: data/manifest.json.
"""

from graphhash.cli import stage
from graphhash.params import load_params
from graphhash.prepare import prepare


@stage
def main() -> None:
    params = load_params("params.yaml", "prepare")
    prepare(params.prepare).save("data/manifest.json")


if __name__ == "__main__":
    main()
