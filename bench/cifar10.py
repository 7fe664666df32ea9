"""The CIFAR-10 benchmark: graphhash against the peers (AGH, AGH2, BiHalf, GreedyHash), LSH, PCAH, SH, ITQ and
cosine ranking, through DVC.

Protocol: queries = the 10,000 test images, database = training set = the 50,000 training images,
relevance = same class; EfficientNet-Lite0 features at 160 px; code lengths 16, 32, 64, 128; seeds 0, 1, 2
(represent.seed, hash.seed and baselines.seed together).

The pipeline runs as ``dvc repro`` in the DVC project ``bench/.work/cifar10`` (``common.Project``: the
repository's dvc.yaml, stages and code, git-ignored), reading CIFAR-10 through the ``cifar10`` source from
``../shared/datasets/cifar10-jpeg.tar``. A configuration is a list of presets (``presets/*.yaml``, the files
``graphhash preset`` applies): every configuration and seed is one run of params.yaml's defaults with the presets'
values and the seed. Prepare and extract run once and are cached by DVC, and each run reruns only what its params
change. Each run's metrics.json, precision-recall curves and stage times and peak memory (from the stages' log
lines) are kept under ``runs/``, so an interrupted benchmark resumes where it stopped. ``--report`` then writes
``docs/results/cifar10.json``, the tables in ``docs/results/cifar10.md`` and the PR figure.

    python bench/cifar10.py                # every configuration and seed, then the report
    python bench/cifar10.py --sweeps       # also the rho and p sweeps of the paper's configuration
    python bench/cifar10.py --report       # only the report, from the runs already made
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
from common import CIFAR_TAR, RESULTS, Project, cifar_params, require, write_report

BITS = [16, 32, 64, 128]
SEEDS = [0, 1, 2]
FILTERS = ["gcn", "cheby", "lanczos", "spline", "fourier"]  # the ``filters`` preset's, in report order

# Each configuration is a list of presets applied over the defaults (the configuration chosen on validation).
# "best" runs first, so that its seed-0 stage times are the whole post-extraction run of graphhash's default
# configuration (neighbours and the classical baselines included); "peers" adds the peers' baselines stages,
# "cnn" the CNN stage 2 (hash.network: cnn) on the same representations.
CONFIGS = {"best": [], "peers": ["peers"], "cnn": ["cnn"], "filters": ["filters"], "paper": ["paper"]}
# The result keys of each configuration's code files.
RENAME = {"best": {}, "peers": {}, "cnn": {"nrdh-gcn": "nrdh-cnn"}, "filters": {},
          "paper": {"nrdh-gcn": "nrdh-paper", "nrdh-none": "nrdh-nograph"}}  # fmt: skip
PEERS = ["agh", "agh2", "bihalf", "greedyhash"]
BEST = ("best", "nrdh-gcn")
SWEEPS = [("graph.rho", v) for v in (0.2, 0.6)] + [("represent.gcn.p", v) for v in (0.5, 1.0)]
FEATURES = "features"  # the record of prepare and extract


def run_all(project: Project, seeds: list[int], configs: list[str], sweeps: bool) -> None:
    project.run(FEATURES, cifar_params(), targets=("extract",))
    for seed in seeds:
        for config in configs:
            seeded = [f"{key}={seed}" for key in ("represent.seed", "hash.seed", "baselines.seed")]
            project.run(f"{config}-s{seed}", cifar_params(*CONFIGS[config], changes=seeded, codes={"bits": BITS}))
    if sweeps:
        for key, value in SWEEPS:
            name = f"sweep-{key.rsplit('.', 1)[1]}-{value}"
            changes = [f"{key}={value}", "codes.filters=[gcn]", "codes.bits=[64]"]
            project.run(name, cifar_params("paper", changes=changes))


def results(runs: dict[str, dict]) -> dict:
    """{method: {bits: {metric: {"mean", "std", "runs"}}}} over the seeds (std with ddof 0: population)."""
    values: dict = {}
    for seed in SEEDS:
        counted: set[str] = set()
        for config in CONFIGS:
            run = runs.get(f"{config}-s{seed}")
            if run is None:
                continue
            # The baselines and cosine of a seed are the same in every configuration (same features, seed,
            # code): counted once, from the first configuration run with that seed that has them.
            for method, by_bits in run["metrics"].items():
                key = RENAME[config].get(method, method)
                if key in counted:
                    continue
                counted.add(key)
                if method == "cosine":
                    by_bits = {str(b): by_bits for b in BITS}  # one ranking, whatever the code length
                names = [key, "nrdh-best"] if (config, method) == BEST else [key]
                for name in names:
                    for bits, metrics in by_bits.items():
                        for metric, value in metrics.items():
                            values.setdefault(name, {}).setdefault(bits, {}).setdefault(metric, []).append(value)
    return {method: {bits: {metric: {"mean": float(np.mean(v)), "std": float(np.std(v)), "runs": len(v)}
                            for metric, v in metrics.items()} for bits, metrics in by_bits.items()}
            for method, by_bits in values.items()}  # fmt: skip


ORDER = ["cosine", "lsh", "pcah", "sh", "itq", *PEERS, "nrdh-paper", "nrdh-nograph", *(f"nrdh-{f}" for f in FILTERS),
         "nrdh-cnn", "nrdh-best"]  # fmt: skip


def table(res: dict, metric: str) -> list[str]:
    max_runs = max(c["runs"] for by_bits in res.values() for metrics in by_bits.values() for c in metrics.values())
    lines = [f"| method | {' | '.join(f'{b} bits' for b in BITS)} |", "| --- |" + " ---: |" * len(BITS)]
    for method in [m for m in ORDER if m in res]:
        cells = []
        for b in BITS:
            cell = res[method].get(str(b), {}).get(metric)
            runs = f" ({cell['runs']} seeds)" if cell and cell["runs"] != max_runs else ""
            cells.append(f"{cell['mean']:.4f} ± {cell['std']:.4f}{runs}" if cell else "")
        if any(cells):  # cosine ranking has no Hamming radius
            lines.append(f"| {method} | {' | '.join(cells)} |")
    return lines


TIMES, SWEEP_HEADING = "#### Wall time per stage (seed 0, 2 CPU cores)", "#### rho and p sweeps"
ROW = re.compile(r"^\| ([^|]+) \| ([^|]+) \| ([\d.]+) \|(?: ([\d.,]*) \|)?$")


def previous_rows(doc: str, heading: str) -> list[tuple[str, ...]]:
    """The rows of a table the previous report wrote under ``heading`` (for the runs not made this time)."""
    if heading not in doc:
        return []
    section = doc.split(heading, 1)[1].split("####", 1)[0].split("<!-- results:end -->", 1)[0]
    return [tuple(c or "" for c in m.groups()) for line in section.splitlines() if (m := ROW.match(line))]


def stage_times(runs: dict[str, dict], doc: str) -> list[str]:
    """Wall time and peak memory of every stage that ran in the seed-0 runs (a stage restored from DVC's cache does
    not run); a run not made this time keeps its rows from the previous report."""
    old: dict[str, list[tuple[str, float, str]]] = {}
    for name, stage, seconds, peak in previous_rows(doc, TIMES):
        old.setdefault(name, []).append((stage, float(seconds), peak))
    rows: list[tuple[str, str, float, str]] = []
    for name, record in [("`dvc repro extract`", FEATURES), *((f"{c}-s0", f"{c}-s0") for c in CONFIGS)]:
        run = runs.get(record)
        if run:
            rows += [(name, stage, ran["seconds"], f"{ran['peak_mib']:,.0f}") for stage, ran in run["stages"].items()]
            rows += [(name, "whole `dvc repro`", run["seconds"], "")] if record != FEATURES else []
        else:
            rows += [(name, stage, seconds, peak) for stage, seconds, peak in old.get(name, [])]
    lines = ["| run | stage | seconds | peak MiB |", "| --- | --- | ---: | ---: |"]
    lines += [f"| {name} | {stage} | {seconds:.1f} | {peak} |" for name, stage, seconds, peak in rows]
    totals: dict[str, float] = {}
    for name, stage, seconds, _ in rows:
        if name.endswith("-s0") and not stage.startswith(("prepare", "extract", "whole")):
            totals[name] = totals.get(name, 0.0) + seconds
    if "best-s0" in totals:
        lines.append(f"| best-s0 | **every stage after extract, all code lengths** | **{totals['best-s0']:.1f}** | |")
    lines.append(f"| {' + '.join(totals)} | every stage after extract | {sum(totals.values()):.1f} | |")
    return lines


def sweep_table(runs: dict[str, dict], doc: str) -> list[str]:
    names = [("rho 0.4, p 0.8 (paper)", "paper-s0")]
    names += [(f"{k.rsplit('.', 1)[1]} {v}", f"sweep-{k.rsplit('.', 1)[1]}-{v}") for k, v in SWEEPS]
    old = {row[0]: row[1:] for row in previous_rows(doc, SWEEP_HEADING)}
    lines = ["| setting (nrdh-paper, 64 bits, seed 0) | mAP@1000 | mAP@all |", "| --- | ---: | ---: |"]
    for name, record in names:
        if record in runs:
            m = runs[record]["metrics"]["nrdh-gcn"]["64"]
            lines.append(f"| {name} | {m['map@1000']:.4f} | {m['map@all']:.4f} |")
        elif name in old:
            lines.append(f"| {name} | {' | '.join(old[name])} |")
    return lines


def pr_figure(runs: dict[str, dict], bits: int, dest: Path) -> None:
    """SVG: precision at each recall level of the ranking, every method, seed 0."""
    curves: dict[str, list[float]] = {}
    recall: list[float] = []
    for config in CONFIGS:
        rows = [line.split(",") for line in runs[f"{config}-s0"]["pr_rank"][str(bits)].split()]
        header, body = rows[0], [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]
        if header != ["method", "recall", "precision"]:
            sys.exit(f"{config}-s0: curves recorded by an older version ({header}); rerun the benchmark")
        for method in sorted({r["method"] for r in body}):
            key = RENAME[config].get(method, method)
            if key not in curves:  # the baselines from the first run that has them
                points = [r for r in body if r["method"] == method]
                recall = [float(r["recall"]) for r in points]
                curves[key] = [float(r["precision"]) for r in points]
    width, height, left, bottom, top, right = 640, 420, 60, 50, 20, 170
    plot_w, plot_h = width - left - right, height - top - bottom
    colours = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
               "#17becf", "#000000"]  # fmt: skip
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
             'font-size="12">', f'<rect width="{width}" height="{height}" fill="white"/>']  # fmt: skip
    for tick in np.linspace(0, 1, 6):
        x, y = left + tick * plot_w, top + (1 - tick) * plot_h
        parts += [f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#ddd"/>',
                  f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">{tick:.1f}</text>',
                  f'<text x="{x:.1f}" y="{top + plot_h + 18}" text-anchor="middle">{tick:.1f}</text>']  # fmt: skip
    parts += [f'<text x="{left + plot_w / 2}" y="{height - 8}" text-anchor="middle">recall</text>',
              f'<text x="16" y="{top + plot_h / 2}" transform="rotate(-90 16 {top + plot_h / 2})" '
              'text-anchor="middle">precision</text>',
              f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#000"/>']  # fmt: skip
    for n, method in enumerate(m for m in ORDER if m in curves):
        colour = colours[n % len(colours)]
        dash = ' stroke-dasharray="5 3"' if n >= len(colours) else ""  # the colours come round again
        points = " ".join(f"{left + r * plot_w:.1f},{top + (1 - p) * plot_h:.1f}"
                          for r, p in zip(recall, curves[method], strict=True))  # fmt: skip
        y = top + 14 + n * 18
        parts += [
            f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="1.5"{dash}/>',
            f'<line x1="{left + plot_w + 12}" y1="{y - 4}" x2="{left + plot_w + 32}" y2="{y - 4}" '
            f'stroke="{colour}" stroke-width="2"{dash}/>',
            f'<text x="{left + plot_w + 38}" y="{y}">{method}</text>',
        ]
    dest.write_text("\n".join([*parts, "</svg>", ""]), encoding="utf-8")


def report(project: Project) -> None:
    """cifar10.json, the tables and the figure from the runs made; a method, stage time or sweep without a run
    here keeps what the previous report wrote (a rerun of some configurations updates their rows only)."""
    runs = project.records()
    committed = RESULTS / "cifar10.json"
    made = results(runs)
    res = {**(json.loads(committed.read_text(encoding="utf-8")) if committed.is_file() else {}), **made}
    RESULTS.mkdir(parents=True, exist_ok=True)
    committed.write_text(json.dumps(res, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    if all(f"{config}-s0" in runs for config in CONFIGS):
        pr_figure(runs, 64, RESULTS / "cifar10-pr-64.svg")
    doc = RESULTS / "cifar10.md"
    text = doc.read_text(encoding="utf-8") if doc.is_file() else "<!-- results:start -->\n<!-- results:end -->\n"
    seeds = ", ".join(str(seed) for seed in SEEDS if any(f"{config}-s{seed}" in runs for config in CONFIGS))
    if not seeds:  # no run made here: the previous report's seeds, as its rows are
        seeds = text.split("Seeds: ", 1)[1].split(";", 1)[0] if "Seeds: " in text else ""
    lines = [f"Seeds: {seeds}; mean ± standard deviation over the seeds.", ""]
    if kept := [method for method in ORDER if method in res and method not in made]:
        carried = "Rows carried over from the previous report (their configurations were not rerun in the latest run)"
        lines += [f"{carried}: {', '.join(kept)}.", ""]
    for metric in ("map@1000", "map@all", "p@r2", "r@r2", "f1@r2"):
        lines += [f"#### {metric}", "", *table(res, metric), ""]
    lines += [TIMES, "", *stage_times(runs, text), ""]
    lines += [SWEEP_HEADING, "", *sweep_table(runs, text), ""]
    write_report(doc, lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sweeps", action="store_true", help="also the rho and p sweeps (64 bits, seed 0)")
    parser.add_argument("--report", action="store_true", help="only write the report from the runs made")
    parser.add_argument("--seeds", type=int, nargs="+", default=SEEDS)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    args = parser.parse_args()
    if not args.report:
        require(CIFAR_TAR, "the CIFAR-10 tar lives in ../shared/datasets")
    project = Project("cifar10")
    if not args.report:
        run_all(project, args.seeds, args.configs, args.sweeps)
    report(project)


if __name__ == "__main__":
    main()
