"""Exact mAP@1000 and mAP@all, graphhash's evaluator against a per-query full-argsort reference.

Data: 64-bit ITQ codes of the CIFAR-10 features (``common.cifar_features``, extracted once by the pipeline:
10,000 test queries, 50,000 train database items, same-class relevance), so ties are as heavy as in real use.
Without the CIFAR-10 tar, seeded random codes and labels of the same shape stand in (printed).

The reference is the straightforward way of the public DeepHash code (``CalcTopMap``): for each query,
Hamming distances from the +-1 codes, a full argsort of the database, then AP from the sorted relevance.
Its sort is made stable, so both sides use the same tie rule (ascending distance, then database index) and
must agree exactly. Both run in this process on the same arrays; the figures are wall times, their ratio,
and how far each raised the process's resident memory above where it started (Linux peak-RSS mark).

The command line and the figures go into docs/benchmarks.md, between the ``metrics_speed`` markers.

    python bench/metrics_speed.py [--queries 10000] [--bits 64]
"""

from __future__ import annotations

import argparse
import ctypes
import shlex
import sys
import time
from pathlib import Path

import numpy as np
from common import BENCHMARKS, CIFAR_TAR, REPO, cifar_features, write_report

from graphhash.evaluation.metrics import evaluate
from graphhash.files.codes import pack, unpack
from graphhash.files.features import read_features
from graphhash.hashers.linear import ITQ


def load_codes(bits: int, queries: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    """Packed query and database codes with their labels, and a description of where they came from."""
    if CIFAR_TAR.is_file():
        path = cifar_features()
        fs = read_features(path)
        itq = ITQ(bits, 0).fit(fs.features[fs.train])
        q, db = pack(itq.encode(fs.features[fs.query])), pack(itq.encode(fs.features[fs.database]))
        ql, dl = fs.labels[fs.query], fs.labels[fs.database]
        return q[:queries], db, ql[:queries], dl, f"ITQ codes of CIFAR-10 features ({path.relative_to(REPO)})"
    rng = np.random.default_rng(0)
    q, db = pack(rng.random((queries, bits)) < 0.5), pack(rng.random((50_000, bits)) < 0.5)
    return q, db, rng.integers(0, 10, queries), rng.integers(0, 10, 50_000), "seeded random codes (no CIFAR-10 tar)"


def reference_map(query, database, query_labels, database_labels, bits: int, k: int) -> tuple[float, float]:
    """mAP@k and mAP@all, one query at a time: float Hamming distances, full stable argsort, AP as DeepHash."""
    q_signs = unpack(query, bits) * 2.0 - 1.0
    db_signs = unpack(database, bits) * 2.0 - 1.0
    ap_k, ap_all = [], []
    for i in range(len(q_signs)):
        distance = 0.5 * (bits - db_signs @ q_signs[i])
        order = np.argsort(distance, kind="stable")
        relevant = (database_labels[order] == query_labels[i]).astype(np.float64)
        for cut, out in ((k, ap_k), (len(order), ap_all)):
            top = relevant[:cut]
            found = int(top.sum())
            if found == 0:
                out.append(0.0)
                continue
            positions = np.flatnonzero(top) + 1.0
            out.append(float(np.mean(np.arange(1, found + 1) / positions)))
    return float(np.mean(ap_k)), float(np.mean(ap_all))


def reset_peak() -> float:
    """Give freed heap back to the OS, reset the kernel's peak-RSS mark (Linux); return the resident MiB now.

    Without the trim, memory freed by earlier steps (loading the features, fitting ITQ) would be reused
    and hide what the measured step allocates.
    """
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")
    return _status_mib("VmRSS")


def peak_mib() -> float:
    return _status_mib("VmHWM")


def _status_mib(key: str) -> float:
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(key + ":"))
    return int(line.split()[1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--bits", type=int, default=64)
    args = parser.parse_args()
    q, db, ql, dl, origin = load_codes(args.bits, args.queries)
    lines = ["```", f"$ {shlex.join(['python', 'bench/metrics_speed.py', *sys.argv[1:]])}"]
    lines.append(f"{len(q)} queries x {len(db)} database items, {args.bits} bits: {origin}")

    start = time.perf_counter()
    evaluate(q[:2], db[:10], ql[:2], dl[:10], args.bits)  # compile (or load Numba's cache) before timing
    lines.append(f"compile/load: {time.perf_counter() - start:.2f} s")

    before = reset_peak()
    start = time.perf_counter()
    fast = evaluate(q, db, ql, dl, args.bits, map_at=(1000,), precision_at=())
    fast_s = time.perf_counter() - start
    fast_growth = peak_mib() - before

    before = reset_peak()
    start = time.perf_counter()
    ref_k, ref_all = reference_map(q, db, ql, dl, args.bits, 1000)
    ref_s = time.perf_counter() - start
    ref_growth = peak_mib() - before

    lines.append(f"{'':12}{'mAP@1000':>20}{'mAP@all':>20}{'seconds':>10}{'ms/query':>10}{'peak +MiB':>11}")
    for name, at_k, at_all, seconds, growth in (("graphhash", fast["map@1000"], fast["map@all"], fast_s, fast_growth),
                                                ("reference", ref_k, ref_all, ref_s, ref_growth)):  # fmt: skip
        lines.append(f"{name:12}{at_k:>20.17f}{at_all:>20.17f}{seconds:>10.2f}{1000 * seconds / len(q):>10.3f}"
                     f"{growth:>11.0f}")  # fmt: skip
    lines.append(f"|difference|: mAP@1000 {abs(fast['map@1000'] - ref_k):.1e}, mAP@all "
                 f"{abs(fast['map@all'] - ref_all):.1e}")  # fmt: skip
    lines.append(f"speed-up: {ref_s / fast_s:.1f}x (graphhash also computes the radius and rank curves)")
    dense = len(q) * len(db) * 2 / 2**20
    lines += [f"for scale: a dense {len(q)} x {len(db)} uint16 distance matrix alone would take {dense:.0f} MiB", "```"]
    write_report(BENCHMARKS, lines, "metrics_speed")


if __name__ == "__main__":
    main()
