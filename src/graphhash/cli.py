"""Command-line entry points: the ``graphhash`` console script and the wrapper every stage script uses."""

from __future__ import annotations

import argparse
import functools
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path

from graphhash.errors import GraphhashError
from graphhash.runtime import tune_allocator

log = logging.getLogger(__name__)


def stage(main: Callable[[], None]) -> Callable[[], None]:
    """Run a stage's ``main`` with logging set up; a GraphhashError becomes its message and exit status 2."""

    @functools.wraps(main)
    def run() -> None:
        logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", stream=sys.stderr)
        tune_allocator()
        start = time.perf_counter()
        try:
            main()
        except GraphhashError as exc:
            for line in str(exc).splitlines():
                print(f"error: {line}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            print("interrupted: rerun the stage to resume from the work already saved", file=sys.stderr)
            sys.exit(130)
        name = " ".join([Path(sys.argv[0]).stem, *sys.argv[1:]])
        log.info("%s finished in %.1f s", name, time.perf_counter() - start)  # read by bench/cifar10.py

    return run


def _info(args: argparse.Namespace) -> None:
    from graphhash.features import read_features

    fs = read_features(args.file)
    print(f"{args.file}: {fs.features.shape[0]} x {fs.features.shape[1]} float32 features")
    for name in ("query", "database", "train"):
        print(f"  {name}: {int(getattr(fs, name).sum())} items")
    for key, value in sorted(fs.attrs.items()):
        print(f"  {key}: {value}")


def _check_params(args: argparse.Namespace) -> None:
    from graphhash.params import SCHEMA, load_params

    params = load_params(args.params, *SCHEMA)
    print(json.dumps({name: vars(section) for name, section in vars(params).items()}, indent=1))


def _encode(args: argparse.Namespace) -> None:
    import numpy as np

    from graphhash.atomic import atomic_path
    from graphhash.codes import pack
    from graphhash.features import read_features
    from graphhash.hashnet import encode, load_hashnet
    from graphhash.nrdh import with_graph_inputs

    model = load_hashnet(args.model)
    fs = read_features(args.features)
    saved = json.loads(Path(args.model).with_suffix(".json").read_text(encoding="utf-8"))
    if saved.get("graph_input"):  # hash.input: graph: the model hashes features propagated over kNN graphs
        fs = with_graph_inputs(fs, saved["graph_input"])
    codes = pack(encode(model, fs.features))
    with atomic_path(args.out) as tmp, open(tmp, "wb") as f:
        np.save(f, codes)
    print(f"{args.out}: {codes.shape[0]} codes of {model.config.bits} bits, packed into {codes.shape[1]} bytes each")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="graphhash", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    info = commands.add_parser("info", help="describe a features file (HDF5)")
    info.add_argument("file")
    info.set_defaults(run=_info)
    check = commands.add_parser("check-params", help="validate params.yaml and print the values stages will use")
    check.add_argument("--params", default="params.yaml")
    check.set_defaults(run=_check_params)
    enc = commands.add_parser("encode", help="hash every row of a features file with a saved NRDH model")
    enc.add_argument("model", help="the model's path without suffix, e.g. models/nrdh-gcn-64")
    enc.add_argument(
        "features",
        help="a features file (HDF5) from the extract stage (for a model trained with "
        "hash.input: graph, its training items are the graph's nodes)",
    )
    enc.add_argument("out", help="where to write the packed codes (.npy, uint8, bit 0 = MSB of byte 0)")
    enc.set_defaults(run=_encode)
    args = parser.parse_args(argv)
    stage(lambda: args.run(args))()


if __name__ == "__main__":
    main()
