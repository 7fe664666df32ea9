"""Every stage after extraction at growing sizes: wall time, peak memory and each stage's growth exponent.

The data is the ``synthetic`` source (a labelled 1280-d Gaussian mixture, ``prepare.synthetic``), one code
length (64 bits), NRDH with the gcn filter and the classical baselines, 10,000 queries (or a tenth of the
items when that is fewer). For each size the repository's own ``dvc.yaml`` is resolved by DVC in a scratch
project holding a params.yaml for that size, and every stage's command runs in its own process, in DVC's
order: the figures are those of ``dvc repro``, stage by stage, with each process's peak resident memory
(``ru_maxrss``). The growth exponent of a stage between two sizes is the log-log slope of its time:
1 is linear in N, 2 quadratic.

    python bench/scale.py                        # 10,000 and 100,000 items
    python bench/scale.py --items 10000 100000 1000000
    python bench/scale.py --items 1000000 --set neighbours.method=ivf   # any param, as `dvc exp run -S`
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import yaml
from common import REPO

QUERIES = 10_000
CLASSES = 100
BITS = 64


def params_for(items: int, base: dict, overrides: list[str]) -> dict:
    """The repository's params.yaml with the data, the code length and the figures set for one size, then
    ``overrides`` (``section.key=value``, the value read as YAML)."""
    params = {section: dict(values) for section, values in base.items()}
    queries = min(QUERIES, items // 10)
    params["prepare"].update(
        source="synthetic", path="", split="random", query_size=max(1, queries // CLASSES), limit_per_class=0
    )
    params["prepare"]["synthetic"] = dict(base["prepare"]["synthetic"], items=items, classes=CLASSES)
    params["extract"]["batch_size"] = 1024
    params["codes"].update(bits=[BITS], filters=["gcn"])
    params["evaluate"]["figure_queries"] = 0
    for override in overrides:
        key, _, value = override.partition("=")
        *sections, name = key.split(".")
        node = params
        for section in sections:
            node = node[section]
        node[name] = yaml.safe_load(value)
    return params


def stage_commands(work: Path) -> list[tuple[str, str]]:
    """(name, command) of every stage of ``work``'s dvc.yaml, in the order ``dvc repro`` runs them."""
    from dvc.repo import Repo

    with Repo(str(work)) as repo:
        import networkx as nx

        graph = repo.index.graph
        order = list(reversed(list(nx.topological_sort(graph))))  # edges point from a stage to its deps
        return [(stage.name, stage.cmd) for stage in order if getattr(stage, "cmd", None)]


def run(command: str, work: Path) -> tuple[float, float]:
    """Seconds and peak resident MiB of one stage's process; stops the benchmark on a non-zero exit."""
    log = work / "stage.log"
    with log.open("w") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(shlex.split(command), cwd=work, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
    code = proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4: tell Popen
    if code != 0:
        raise SystemExit(f"{command}: exit {code}\n{log.read_text()[-3000:]}")
    return seconds, usage.ru_maxrss / 1024  # Linux reports KiB


def one_size(items: int, base: dict, overrides: list[str], keep: Path | None) -> dict[str, tuple[float, float]]:
    """Run every stage at one size in a scratch project; {stage: (seconds, peak MiB)}."""
    work = Path(tempfile.mkdtemp(prefix=f"scale-{items}-", dir=keep))
    shutil.copy(REPO / "dvc.yaml", work / "dvc.yaml")
    (work / "stages").symlink_to(REPO / "stages")
    (work / "src").symlink_to(REPO / "src")
    (work / "params.yaml").write_text(yaml.safe_dump(params_for(items, base, overrides), sort_keys=False))
    subprocess.run(["dvc", "init", "--no-scm", "-q"], cwd=work, check=True)
    figures = {}
    for name, command in stage_commands(work):
        figures[name] = run(command, work)
        print(f"{items:>9,}  {name:<16} {figures[name][0]:>9.1f} s {figures[name][1]:>9,.0f} MiB", flush=True)
    if keep is None:
        shutil.rmtree(work, ignore_errors=True)
    return figures


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
    parser.add_argument("--keep", type=Path, help="leave each size's scratch project in this folder")
    args = parser.parse_args()
    base = yaml.safe_load((REPO / "params.yaml").read_text())
    print(f"{'items':>9}  {'stage':<16} {'time':>11} {'peak':>13}", flush=True)
    runs = {items: one_size(items, base, args.overrides, args.keep) for items in sorted(args.items)}

    sizes = sorted(runs)
    pairs = list(itertools.pairwise(sizes))
    print(f"\n{'stage':<16}" + "".join(f"{n:>12,}" for n in sizes) + "".join(
        f"  slope {a // 1000}k-{b // 1000}k" for a, b in pairs))  # fmt: skip
    for stage in runs[sizes[0]]:
        times = [runs[n][stage][0] for n in sizes]
        time_of = dict(zip(sizes, times, strict=True))
        slopes = [math.log(time_of[b] / time_of[a]) / math.log(b / a) for a, b in pairs]
        print(f"{stage:<16}" + "".join(f"{t:>11.1f}s" for t in times) + "".join(f"{s:>17.2f}" for s in slopes))
    for n in sizes:
        total = sum(t for t, _ in runs[n].values())
        peak = max(m for _, m in runs[n].values())
        print(f"{n:>9,} items: {total:.1f} s in all, largest peak {peak:,.0f} MiB")


if __name__ == "__main__":
    main()
