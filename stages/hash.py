"""DVC stage ``hash@<filter>``: NRDH's stage 2, the hash network and the codes of the query and database items,
fitted to one graph filter's representations at every code length (paths: dvc.yaml)."""

from pathlib import Path

from graphhash.params import load_params
from graphhash.params.codes import CodesParams
from graphhash.params.extract import ExtractParams
from graphhash.params.graph import GraphParams
from graphhash.params.hash import HashParams
from graphhash.pipeline.hash import hash_codes
from graphhash.pipeline.stage import run_stage


def main(args) -> None:
    codes, graph, params, extract = load_params(CodesParams, GraphParams, HashParams, ExtractParams)
    hash_codes(args.features, args.neighbours, args.representations, args.filter, codes.bits, params, graph,
               codes=args.codes, models=args.models, losses=args.losses, extract=extract,
               manifest=args.manifest)  # fmt: skip


if __name__ == "__main__":
    run_stage(main, __doc__, filter=str, manifest=Path, features=Path, neighbours=Path, representations=Path,
              codes=Path, models=Path, losses=Path,
              saves="the CNN's last checkpoint (hash.network: cnn; an MLP starts over)")  # fmt: skip
