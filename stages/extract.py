"""DVC stage ``extract``: pretrained backbone features for every item of the manifest (paths: dvc.yaml)."""

from pathlib import Path

from graphhash.files.manifest import Manifest
from graphhash.params import load_params
from graphhash.params.extract import ExtractParams
from graphhash.pipeline.extract import extract
from graphhash.pipeline.stage import run_stage


def main(args) -> None:
    (params,) = load_params(ExtractParams)
    extract(Manifest.load(args.manifest), params, args.features)


if __name__ == "__main__":
    run_stage(
        main, __doc__, manifest=Path, features=Path, saves="the batches it embedded (chunks beside the features file)"
    )
