"""DVC stage ``prepare``: list the data source, split it, and write the manifest (paths: dvc.yaml)."""

from pathlib import Path

from graphhash.params import load_params
from graphhash.params.prepare import PrepareParams
from graphhash.pipeline.prepare import prepare
from graphhash.pipeline.stage import run_stage


def main(args) -> None:
    (params,) = load_params(PrepareParams)
    prepare(params).save(args.manifest)


if __name__ == "__main__":
    run_stage(main, __doc__, manifest=Path)
