"""Time and peak memory of the represent and hash stages on CIFAR-10 (50,000 x 1280 training features).

Uses the features of ``bench/cifar_features.py`` (EfficientNet-Lite0 at 160 px, extracted once) and the
``graph``, ``represent`` and ``hash`` sections of the repository's params.yaml (``--preset paper`` for NRDH
as published). Each stage runs in a fresh process, which reports its wall time and peak resident memory.

    python bench/nrdh_stages.py [--bits 64] [--filter gcn] [--preset paper]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cifar_features import cifar_features
from common import REPO

from graphhash.params import read_params_file, validate
from graphhash.params.graph import GraphParams
from graphhash.params.hash import HashParams
from graphhash.params.represent import RepresentParams
from graphhash.pipeline.hash import hash_codes
from graphhash.pipeline.neighbours import find_neighbours
from graphhash.pipeline.represent import represent
from graphhash.presets import merged, read_preset
from graphhash.runtime import tune_allocator


def sections(preset: str | None) -> tuple[GraphParams, RepresentParams, HashParams]:
    raw = read_params_file(REPO / "params.yaml")
    if preset:
        raw = merged(raw, read_preset(preset, REPO / "params.yaml"))
    return validate(raw, (GraphParams, RepresentParams, HashParams))


def one_stage(stage: str, bits: int, name: str, preset: str | None, work: Path) -> None:
    """Run one stage; print its seconds and peak MiB."""
    tune_allocator()  # as the stage scripts do
    graph, represent_params, hash_params = sections(preset)
    features = cifar_features()
    neighbours = work / "neighbours.h5"
    start = time.perf_counter()
    if stage == "represent":
        represent(features, neighbours, name, [bits], represent_params, graph, out=work / "repr",
                  models=work / "gcnae", losses=work / "represent")  # fmt: skip
    else:
        hash_codes(features, neighbours, work / "repr", name, [bits], hash_params, graph, codes=work / "codes",
                   models=work / "nrdh", losses=work / "hash")  # fmt: skip
    seconds = time.perf_counter() - start
    print(f"{seconds:.1f} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bits", type=int, default=64)
    parser.add_argument("--filter", default="gcn")
    parser.add_argument("--preset", help="a preset applied over params.yaml, e.g. paper")
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        one_stage(args.stage, args.bits, args.filter, args.preset, args.work)
        return
    features = cifar_features()
    graph, represent_params, hash_params = sections(args.preset)
    print(f"features: {features.name}; {graph}\nrepresent: {represent_params}\nhash: {hash_params}")
    print(f"{'stage':>10} {'bits':>5} {'seconds':>8} {'peak MiB':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        find_neighbours(features, graph, Path(tmp) / "neighbours.h5")
        for stage in ("represent", "hash"):
            command = [sys.executable, __file__, "--stage", stage, "--bits", str(args.bits), "--filter", args.filter,
                       "--work", tmp, *(["--preset", args.preset] if args.preset else [])]  # fmt: skip
            out = subprocess.run(command, capture_output=True, text=True, check=True).stdout.split()
            print(f"{stage:>10} {args.bits:>5} {out[0]:>8} {out[1]:>9}")
        lines = (Path(tmp) / "represent" / f"{args.bits}.csv").read_text().splitlines()
        print(f"represent loss, first and last epoch: {lines[1]} ... {lines[-1]}")


if __name__ == "__main__":
    main()
