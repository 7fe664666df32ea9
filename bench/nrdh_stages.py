"""Time and peak memory of the represent and hash stages on CIFAR-10 (50,000 x 1280 training features).

Uses the features of ``bench/cifar_features.py`` (EfficientNet-Lite0 at 160 px, extracted once) and the
``represent`` and ``hash`` sections of the repository's params.yaml (the paper's settings: GCN, M = 10,
rho = 0.4, p = 0.8, alpha = 0.999, beta = 0.001, mu = 0.8, omega = 0.2). Each stage runs in a fresh
process, which reports its wall time and peak resident memory.

    python bench/nrdh_stages.py [--bits 64] [--filter gcn]
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

from graphhash.nrdh import hash_codes, represent
from graphhash.params import load_params, with_filter
from graphhash.runtime import tune_allocator


def one_stage(stage: str, bits: int, name: str, work: Path) -> None:
    """Run one stage; print its seconds and peak MiB."""
    tune_allocator()  # as the stage scripts do
    params = load_params(REPO / "params.yaml", "represent", "hash")
    params.represent = with_filter(params.represent, name)
    features = cifar_features()
    start = time.perf_counter()
    if stage == "represent":
        represent(features, bits, params.represent, work / "repr.h5", work / "gcnae", work / "represent.csv")
    else:
        hash_codes(features, work / "repr.h5", bits, params.hash, f"nrdh-{name}", work / "codes.h5", work / "nrdh",
                   work / "hash.csv")  # fmt: skip
    seconds = time.perf_counter() - start
    print(f"{seconds:.1f} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bits", type=int, default=64)
    parser.add_argument("--filter", default="gcn")
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        one_stage(args.stage, args.bits, args.filter, args.work)
        return
    features = cifar_features()
    params = load_params(REPO / "params.yaml", "represent", "hash")
    print(f"features: {features.name}; represent: {vars(params.represent)}")
    print(f"hash: {vars(params.hash)}")
    print(f"{'stage':>10} {'bits':>5} {'seconds':>8} {'peak MiB':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for stage in ("represent", "hash"):
            out = subprocess.run(
                [sys.executable, __file__, "--stage", stage, "--bits", str(args.bits), "--filter", args.filter,
                 "--work", tmp],
                capture_output=True, text=True, check=True,
            ).stdout.split()  # fmt: skip
            print(f"{stage:>10} {args.bits:>5} {out[0]:>8} {out[1]:>9}")
        lines = (Path(tmp) / "represent.csv").read_text().splitlines()
        print(f"represent loss, first and last epoch: {lines[1]} ... {lines[-1]}")


if __name__ == "__main__":
    main()
