"""The Wiki benchmark: xmodal-nrdh (NRDH on paired data, ``presets/crossmodal.yaml``) against the unsupervised
cross-modal baselines CVH, CMFH and CCA-ITQ and per-view LSH (the floor), with the supervised GCH beside them.

Protocol: the Wikipedia image-text pairs (``../shared/datasets/wiki``: 128-d SIFT bags of visual words, 10-d LDA
topic proportions); queries = the 693 test pairs, database = training set = the 2,173 training pairs; image->text
(an image query's code ranks the database texts' codes) and text->image, with image->image and text->text for
reference; relevance = same category; mAP@all, mAP@50 and precision-recall curves (``graphhash.evaluation``: Hamming
ties by database index). Code lengths 16, 32 and 64, and 8 bits, the one length CVH and CCA-ITQ take here (the
centred topic proportions span 9 dimensions: they refuse more bits); seeds 0, 1, 2 (represent.seed, hash.seed and
baselines.seed together).

Each run is ``dvc repro`` of the pipeline (``common.Project``) on params.yaml's defaults with the crossmodal preset,
the Wiki source and the run's code lengths, methods and seed (``docs/results/wiki.md`` gives the equivalent
``dvc exp run``). Runs are kept under ``bench/.work/wiki/runs`` (git-ignored), so an interrupted benchmark
resumes; ``--report`` writes ``docs/results/wiki.json`` ({method: {bits: {direction:
{metric: {mean, std, runs}}}}}, the shape of cifar10.json with a level per direction) and the tables of
``docs/results/wiki.md``. About 25 minutes on 2 cores (GCH: about a minute per fit).

    python bench/wiki.py              # every configuration and seed, then the report
    python bench/wiki.py --report     # only the report, from the runs already made
"""

from __future__ import annotations

import json

from common import RESULTS, WIKI, Project, params, seeded_benchmark, summarise, write_report

SEEDS = [0, 1, 2]
UNSUPERVISED = ["cvh", "cmfh", "cca_itq"]
# configuration: (code lengths, baselines.methods); the crossmodal preset's other values throughout
CONFIGS = {"main": ([16, 32, 64], ["lsh", "cmfh", "gch"]), "short": ([8], ["lsh", *UNSUPERVISED, "gch"])}
DIRECTIONS = ["image->text", "text->image", "image->image", "text->text"]
METHOD = "nrdh-gcn"  # the codes of xmodal-nrdh
NAMES = {"nrdh-gcn": "xmodal-nrdh", "lsh": "LSH (per view)", "cvh": "CVH", "cmfh": "CMFH", "cca_itq": "CCA-ITQ",
         "gch": "GCH (supervised)", "cosine": "cosine (real-valued, within a modality)"}  # fmt: skip


def run_params(bits: list[int], methods: list[str], seed: int) -> dict:
    """params.yaml's defaults with the crossmodal preset, the Wiki source, the run's lengths, methods and seed."""
    return params("crossmodal", prepare={"source": "wiki", "path": str(WIKI)}, codes={"bits": bits},
                  represent={"seed": seed}, hash={"seed": seed}, baselines={"methods": methods, "seed": seed},
                  evaluate={"map_at": [50], "figure_queries": 0})  # fmt: skip


BITS = sorted({b for lengths, _ in CONFIGS.values() for b in lengths})


def table(res: dict, way: str, metric: str) -> list[str]:
    lines = [f"| method | {' | '.join(f'{b} bits' for b in BITS)} |", "| --- |" + " ---: |" * len(BITS)]
    for method in ["lsh", *UNSUPERVISED, METHOD, "gch", "cosine"]:
        cells = []
        for b in BITS:
            cell = res.get(method, {}).get(str(b), {}).get(way, {}).get(metric)
            cells.append(f"{cell['mean']:.4f} ± {cell['std']:.4f}" if cell else "-")
        if any(c != "-" for c in cells):
            lines.append(f"| {NAMES[method]} | {' | '.join(cells)} |")
    return lines


def margins(res: dict) -> list[str]:
    """xmodal-nrdh's mAP@all minus the best unsupervised baseline's at each length, per cross-modal direction."""
    lines = ["| direction | " + " | ".join(f"{b} bits" for b in BITS) + " |", "| --- |" + " --- |" * len(BITS)]
    for way in DIRECTIONS[:2]:
        cells = []
        for b in BITS:
            ours = res[METHOD][str(b)][way]["map@all"]["mean"]
            best = max((res[m][str(b)][way]["map@all"]["mean"], m) for m in ["lsh", *UNSUPERVISED]
                       if str(b) in res.get(m, {}))  # fmt: skip
            cells.append(f"{ours - best[0]:+.4f} (best: {NAMES[best[1]]} {best[0]:.4f})")
        lines.append(f"| {way} | " + " | ".join(cells) + " |")
    return lines


def report(project: Project) -> None:
    runs = project.records()
    res = summarise(runs, lambda name: CONFIGS[name.rsplit("-s", 1)[0]][0])
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "wiki.json").write_text(json.dumps(res, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    seeds = sorted({int(name.rsplit("-s", 1)[1]) for name in runs})
    lines = [f"Seeds: {', '.join(map(str, seeds))}; mean ± standard deviation over the seeds; '-': not run (CVH and "
             "CCA-ITQ refuse more than 9 bits here).", "", "#### xmodal-nrdh minus the best unsupervised baseline, "
             "mAP@all", "", *margins(res), ""]  # fmt: skip
    for way in DIRECTIONS:
        for metric in ("map@all", "map@50"):
            lines += [f"#### {way}, {metric}", "", *table(res, way, metric), ""]
    seconds = {name: run["seconds"] for name, run in runs.items() if name.endswith("-s0")}
    lines += ["Wall time of a whole run, seed 0 (2 CPU cores): " + ", ".join(f"{n} {s:.0f} s" for n, s in
                                                                             seconds.items()), ""]  # fmt: skip
    write_report(RESULTS / "wiki.md", lines)


def seed_runs(seed: int) -> dict[str, dict]:
    """Every configuration's run of one seed, by name."""
    return {f"{config}-s{seed}": run_params(bits, methods, seed) for config, (bits, methods) in CONFIGS.items()}


def main() -> None:
    seeded_benchmark(__doc__, "wiki", WIKI / "raw_features.mat", seed_runs, report, SEEDS)


if __name__ == "__main__":
    main()
