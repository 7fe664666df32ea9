"""DVC stage ``index@<filter>-<bits>``: a FAISS binary index over one NRDH code file's database codes, for
``graphhash search`` and ``graphhash serve`` (paths: dvc.yaml)."""

from pathlib import Path

from graphhash.params import load_params
from graphhash.params.index import IndexParams
from graphhash.pipeline.index import index_codes
from graphhash.pipeline.stage import run_stage


def main(args) -> None:
    (params,) = load_params(IndexParams)
    index_codes(args.codes, args.filter, args.bits, params, args.out)


if __name__ == "__main__":
    run_stage(main, __doc__, filter=str, bits=int, codes=Path, out=Path)
