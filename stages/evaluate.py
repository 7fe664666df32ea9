"""DVC stage ``evaluate``: every code file the params name (and the cosine ranking of the raw features) on the
same protocol (paths: dvc.yaml)."""

from pathlib import Path

from graphhash.params import load_params
from graphhash.params.baselines import BaselinesParams
from graphhash.params.codes import CodesParams
from graphhash.params.evaluate import EvaluateParams
from graphhash.pipeline.evaluate import evaluate_codes
from graphhash.pipeline.stage import run_stage


def main(args) -> None:
    params, codes, baselines = load_params(EvaluateParams, CodesParams, BaselinesParams)
    evaluate_codes(args.codes, args.features, args.manifest, params, codes, baselines, metrics_path=args.metrics,
                   results_path=args.results, curves=args.curves, figures=args.figures,
                   summary=args.summary)  # fmt: skip


if __name__ == "__main__":
    run_stage(main, __doc__, codes=Path, features=Path, manifest=Path, metrics=Path, summary=Path, results=Path,
              curves=Path, figures=Path)  # fmt: skip
