"""DVC stage ``baselines@<bits>``: the classical hashers' codes on the same features (paths: dvc.yaml)."""

from pathlib import Path

from graphhash.params import load_params
from graphhash.params.baselines import BaselinesParams
from graphhash.pipeline.baselines import baseline_codes
from graphhash.pipeline.stage import run_stage


def main(args) -> None:
    (params,) = load_params(BaselinesParams)
    baseline_codes(args.features, args.bits, params, args.out)


if __name__ == "__main__":
    run_stage(main, __doc__, bits=int, features=Path, out=Path)
