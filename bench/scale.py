"""Every stage after extraction at growing sizes: wall time, peak memory and each stage's growth exponent.

The data is the ``synthetic`` source (a labelled 1280-d Gaussian mixture, ``prepare.synthetic``), one code
length (64 bits), NRDH with the gcn filter and the classical baselines, 10,000 queries (or a tenth of the
items when that is fewer). Each size is ``dvc repro`` of the repository's pipeline in its own DVC project,
``bench/.work/scale-<items>`` (``common.Project``), with a params.yaml for that size: every stage runs in its
own process, in DVC's order, and reports its wall time and peak resident memory in its last log line. The growth
exponent of a stage between two sizes is the log-log slope of its time: 1 is linear in N, 2 quadratic.
``docs/benchmarks.md``'s table of the run is written by the script (``--items``' sizes name its block).

    python bench/scale.py                        # 10,000 and 100,000 items
    python bench/scale.py --items 10000 100000 1000000
    python bench/scale.py --items 1000000 --set neighbours.method=ivf   # any param, as `dvc exp run -S`
    python bench/scale.py --items 1000000 --set prepare.train=sample --set prepare.train_size=0.1  # train on 100k

After the table: NRDH's and the best baseline's mAP@1000 (by labels) and nmap@1000 (by true neighbours) at each
size.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math

from common import BENCHMARKS, Project, params, write_report

QUERIES = 10_000
CLASSES = 100
BITS = 64


def params_for(items: int, changes: list[str]) -> dict:
    """params.yaml's defaults with the data, the code length and the figures set for one size, then ``changes``
    (``section.key=value``, the value read as YAML)."""
    queries = min(QUERIES, items // 10)
    return params(
        changes=changes,
        prepare={"source": "synthetic", "path": "", "split": "random", "query_size": max(1, queries // CLASSES),
                 "limit_per_class": 0, "synthetic": {"items": items, "classes": CLASSES}},
        extract={"batch_size": 1024},
        codes={"bits": [BITS], "filters": ["gcn"]},
        evaluate={"figure_queries": 0},
    )  # fmt: skip


def one_size(items: int, changes: list[str]) -> tuple[dict[str, tuple[float, float]], dict[str, dict]]:
    """Every stage at one size; {stage: (seconds, peak MiB)} and the run's metrics at BITS ({method: metrics})."""
    suffix = "-".join(change.replace("=", "-") for change in changes)
    project = Project(f"scale-{items}" + (f"-{suffix}" if suffix else ""))
    record = project.run("all", params_for(items, changes))
    figures = {stage: (ran["seconds"], ran["peak_mib"]) for stage, ran in record["stages"].items()}
    for stage, (seconds, peak) in figures.items():
        print(f"{items:>9,}  {stage:<16} {seconds:>9.1f} s {peak:>9,.0f} MiB", flush=True)
    metrics = json.loads(project.path("metrics").read_text())
    return figures, {method: by_bits[str(BITS)] for method, by_bits in metrics.items() if method != "cosine"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a param for every size, e.g. neighbours.method=ivf (repeatable)",
    )
    args = parser.parse_args()
    print(f"{'items':>9}  {'stage':<16} {'time':>11} {'peak':>13}", flush=True)
    measured = {items: one_size(items, args.overrides) for items in sorted(args.items)}
    runs = {items: figures for items, (figures, _) in measured.items()}

    sizes = sorted(runs)
    pairs = list(itertools.pairwise(sizes))
    command = " ".join(["python bench/scale.py --items", *map(str, sizes), *(f"--set {o}" for o in args.overrides)])
    lines = ["```", f"$ {command}", f"{'stage':<16}" + "".join(f"{n:>12,}" for n in sizes)
             + "".join(f"  slope {a // 1000}k-{b // 1000}k" for a, b in pairs)]  # fmt: skip
    for stage in runs[sizes[0]]:
        times = [runs[n][stage][0] for n in sizes]
        time_of = dict(zip(sizes, times, strict=True))
        slopes = [
            math.log(time_of[b] / time_of[a]) / math.log(b / a) if min(time_of[a], time_of[b]) > 0 else math.nan
            for a, b in pairs
        ]  # fmt: skip (a stage logged as 0.0 s has no measurable slope)
        peaks = ", ".join(f"{runs[n][stage][1]:,.0f}" for n in sizes)
        lines.append(f"{stage:<16}" + "".join(f"{t:>11.1f}s" for t in times) + "".join(f"{s:>17.2f}" for s in slopes)
                     + f"   peak MiB {peaks}")  # fmt: skip
    for n in sizes:
        total = sum(t for t, _ in runs[n].values())
        peak = max(m for _, m in runs[n].values())
        lines.append(f"{n:>9,} items: {total:.1f} s in all, largest peak {peak:,.0f} MiB")
    for n in sizes:  # the quality: NRDH's and the best baseline's, by labels and by true neighbours
        scores = measured[n][1]
        cells = []
        for key in ("map@1000", "nmap@1000"):
            peer = max((m for m in scores if not m.startswith("nrdh-")), key=lambda m, key=key: scores[m][key])
            ours = scores["nrdh-gcn"][key]
            cells.append(f"{key} nrdh-gcn {ours:.4f}, best baseline ({peer}) {scores[peer][key]:.4f}")
        lines.append(f"{n:>9,} items, {BITS} bits: " + "; ".join(cells))
    block = "scale-" + "-".join(str(n) for n in sizes) + "".join(f"-{o}" for o in args.overrides)
    write_report(BENCHMARKS, [*lines, "```"], block)


if __name__ == "__main__":
    main()
