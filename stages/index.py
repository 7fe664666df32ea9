"""DVC stage ``index@<filter>-<bits>``: a FAISS binary index over one NRDH code file's database codes and the items
graphhash add added, less those graphhash remove took out, for ``graphhash search`` and ``graphhash serve`` (paths:
dvc.yaml)."""

from pathlib import Path

from graphhash.params import load_params
from graphhash.params.extract import ExtractParams
from graphhash.params.index import IndexParams
from graphhash.pipeline.index import Run, index_codes
from graphhash.pipeline.stage import run_stage


def main(args) -> None:
    params, extract = load_params(IndexParams, ExtractParams)
    run = Run(features=args.features, models=args.models, changes=args.changes, additions=args.additions)
    index_codes(args.codes, args.filter, args.bits, params, extract, run, args.out)


if __name__ == "__main__":
    run_stage(main, __doc__, filter=str, bits=int, codes=Path, features=Path, models=Path, changes=Path,
              additions=Path, out=Path)  # fmt: skip
