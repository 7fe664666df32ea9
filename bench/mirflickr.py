"""Multi-label data through the whole pipeline: MIRFlickr-25K's tags as one modality, NRDH at the defaults against
the classical baselines and the peers, relevance = a shared label.

Data: ``../shared/datasets/mirflickr25k-tags`` (20,015 items, a 1,386-d binary bag of tags each, 24 concept labels,
1-14 per item). The dataset publishes no split and a split by class does not apply to items of several classes: the
2,000 queries of the common cross-modal protocol are drawn uniformly (``prepare.split: random``,
``prepare.query_size: 2000``, seeded by ``prepare.seed`` 0), the other 18,015 items the database and training set.
NRDH runs at params.yaml's defaults, chosen on image features (digits, CIFAR-10): these tags are data it was never
tuned on. Baselines: LSH, PCAH, ITQ, SH and the peers AGH, AGH2, BiHalf and GreedyHash at their defaults; cosine
ranking of the tags; code lengths 16, 32, 64; seeds 0, 1, 2 (represent.seed, hash.seed, baselines.seed). Each run is
``dvc repro`` of the pipeline on those params (``common.Project``), as this ``dvc exp run`` would:

    dvc exp run -S prepare.source=mirflickr_tags -S prepare.path=../shared/datasets/mirflickr25k-tags \\
        -S prepare.split=random -S prepare.query_size=2000

``--report`` writes ``docs/results/mirflickr.json`` (the shape of cifar10.json) and the tables of
``docs/results/mirflickr.md``.

    python bench/mirflickr.py              # every seed, then the report
    python bench/mirflickr.py --report     # only the report, from the runs already made
"""

from __future__ import annotations

import json

from common import DATASETS, RESULTS, Project, params, seeded_benchmark, summarise, write_report

TAGS = DATASETS / "mirflickr25k-tags"
SEEDS = [0, 1, 2]
BITS = [16, 32, 64]
ORDER = ["cosine", "lsh", "pcah", "sh", "itq", "agh", "agh2", "bihalf", "greedyhash", "nrdh-gcn"]


def run_params(seed: int) -> dict:
    """The defaults with the peers, MIRFlickr's tags, 2,000 queries drawn in all, and the run's seed."""
    return params("peers", prepare={"source": "mirflickr_tags", "path": str(TAGS), "split": "random",
                                    "query_size": 2000}, codes={"bits": BITS}, represent={"seed": seed},
                  hash={"seed": seed}, baselines={"seed": seed}, evaluate={"figure_queries": 0})  # fmt: skip


def table(res: dict, metric: str) -> list[str]:
    lines = [f"| method | {' | '.join(f'{b} bits' for b in BITS)} |", "| --- |" + " ---: |" * len(BITS)]
    for method in [m for m in ORDER if m in res]:
        cells = [res[method][str(b)].get(metric) for b in BITS]
        if any(cells):  # cosine ranking has no Hamming radius
            lines.append(f"| {method} | " + " | ".join(f"{c['mean']:.4f} ± {c['std']:.4f}" if c else "" for c in cells)
                         + " |")  # fmt: skip
    return lines


def report(project: Project) -> None:
    runs = project.records()
    res = summarise(runs, lambda name: BITS)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "mirflickr.json").write_text(json.dumps(res, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    peers = ["agh", "agh2", "bihalf", "greedyhash", "itq", "lsh", "pcah", "sh"]
    seeds = ", ".join(sorted(name.removeprefix("s") for name in runs))
    lines = [f"Seeds: {seeds}; mean ± standard deviation over the seeds.", "",
             "#### NRDH minus the best other method (mAP@1000 and mAP@all)", "",
             "| metric | " + " | ".join(f"{b} bits" for b in BITS) + " |",
             "| --- |" + " --- |" * len(BITS)]  # fmt: skip
    for metric in ("map@1000", "map@all"):
        cells = []
        for b in BITS:
            best = max((res[m][str(b)][metric]["mean"], m) for m in peers if m in res)
            cells.append(f"{res['nrdh-gcn'][str(b)][metric]['mean'] - best[0]:+.4f} (best: {best[1]} {best[0]:.4f})")
        lines.append(f"| {metric} | " + " | ".join(cells) + " |")
    lines.append("")
    for metric in ("map@1000", "map@all", "map@100", "p@r2"):
        lines += [f"#### {metric}", "", *table(res, metric), ""]
    seconds = {name: run["seconds"] for name, run in runs.items()}
    lines += ["Wall time of a whole run (2 CPU cores): " + ", ".join(f"{n} {s:.0f} s" for n, s in seconds.items()), ""]
    write_report(RESULTS / "mirflickr.md", lines)


def main() -> None:
    seeded_benchmark(__doc__, "mirflickr", TAGS / "mirflickr25k-yall.mat", lambda seed: {f"s{seed}": run_params(seed)},
                     report, SEEDS)  # fmt: skip


if __name__ == "__main__":
    main()
