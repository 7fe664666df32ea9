"""DVC stage ``additions``: the features of the items graphhash add added, one file per add (paths: dvc.yaml)."""

from pathlib import Path

from graphhash.params import load_params
from graphhash.params.extract import ExtractParams
from graphhash.pipeline.additions import update_additions
from graphhash.pipeline.stage import run_stage


def main(args) -> None:
    (params,) = load_params(ExtractParams)
    update_additions(args.changes, args.features, params, args.out)


if __name__ == "__main__":
    run_stage(main, __doc__, changes=Path, features=Path, out=Path)
