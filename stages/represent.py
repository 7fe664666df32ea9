"""DVC stage ``represent@<filter>``: NRDH's stage 1, node representations from the graph autoencoder, at every
code length (paths: dvc.yaml)."""

from pathlib import Path

from graphhash.params import load_params
from graphhash.params.codes import CodesParams
from graphhash.params.graph import GraphParams
from graphhash.params.represent import RepresentParams
from graphhash.pipeline.represent import represent
from graphhash.pipeline.stage import run_stage


def main(args) -> None:
    codes, graph, params = load_params(CodesParams, GraphParams, RepresentParams)
    represent(args.features, args.neighbours, args.filter, codes.bits, params, graph, out=args.out,
              models=args.models, losses=args.losses)  # fmt: skip


if __name__ == "__main__":
    run_stage(main, __doc__, filter=str, features=Path, neighbours=Path, out=Path, models=Path, losses=Path)
