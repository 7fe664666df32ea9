"""The label-free protocol against the labels: do nmap@K and recall@K order the methods as mAP@K does?

A collection without labels is measured by the classical unsupervised protocol only (a query's relevant items are
its R nearest database items by cosine of the raw features; ``graphhash.evaluation.metrics``). This compares the
two on labelled data: digits (params.yaml's defaults, the test protocol) and CIFAR-10 (the defaults, the standard
protocol: 10,000 test queries, 50,000 database items; when ../shared has it), with the classical baselines, seed 0,
each ``dvc repro`` of the repository's pipeline in its own project (``common.Project``: ``bench/.work/digits``,
``bench/.work/cifar10``). For every code length: the methods in the order of mAP@1000 (labels) and of nmap@1000
and recall@1000 (true neighbours, R = 100), their values, and Kendall's tau between the label order and each
label-free one (1: the same order, -1: reversed). Writes ``docs/results/label-free.md``.

    python bench/label_free.py      # digits (2 minutes on 2 cores), then CIFAR-10 (about 20 minutes, extraction
                                    # included when the code changed)
"""

from __future__ import annotations

from common import CIFAR_TAR, RESULTS, Project, cifar_params, params, write_report
from scipy.stats import kendalltau

BITS = [16, 32, 64]
K = 1000
KEYS = {"map": f"map@{K}", "nmap": f"nmap@{K}", "recall": f"recall@{K}"}


def ordering(metrics: dict, bits: int) -> list[str]:
    """One table: a row per method, its three values and its place by each, then Kendall's tau."""
    methods = sorted(m for m in metrics if m != "cosine")
    values = {name: {m: metrics[m][str(bits)][key] for m in methods} for name, key in KEYS.items()}
    place = {name: {m: i + 1 for i, m in enumerate(sorted(methods, key=lambda m, v=v: -v[m]))}
             for name, v in values.items()}  # fmt: skip
    lines = [
        f"| {bits} bits | mAP@{K} (place) | nmap@{K} (place) | recall@{K} (place) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for m in sorted(methods, key=lambda m: place["map"][m]):
        lines.append(f"| {m} | " + " | ".join(f"{values[n][m]:.4f} ({place[n][m]})" for n in KEYS) + " |")
    taus = []
    for name in ("nmap", "recall"):
        tau = kendalltau([place["map"][m] for m in methods], [place[name][m] for m in methods]).statistic
        taus.append(f"{KEYS[name]} {tau:+.2f}")
    return [*lines, "", f"Kendall's tau against the mAP@{K} order: {', '.join(taus)}.", ""]


def report(name: str, metrics: dict) -> list[str]:
    lines = [f"## {name}", ""]
    for bits in BITS:
        lines += ordering(metrics, bits)
    return lines


def main() -> None:
    runs = {"digits (test protocol, 200 queries)": Project("digits").run("label-free", params())}
    if CIFAR_TAR.exists():
        cifar = Project("cifar10").run("label-free", cifar_params(codes={"bits": BITS}))
        runs["CIFAR-10 (standard protocol, 10,000 queries)"] = cifar
    else:
        print(f"CIFAR-10 skipped: {CIFAR_TAR} not found (../shared/datasets)")
    lines = ["Written by `python bench/label_free.py` (seed 0, 2 CPU cores)."]
    for name, record in runs.items():
        lines += ["", *report(name, record["metrics"])]
    write_report(RESULTS / "label-free.md", lines)


if __name__ == "__main__":
    main()
