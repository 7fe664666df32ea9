"""Choose settings on validation splits, never on test queries: every row is a run of the pipeline on a dataset's
validation split, scored by its evaluate stage.

A validation run is the pipeline with ``prepare.validation_size`` set: the dataset's test queries are left out
altogether, and validation queries are drawn per class from the database items (seeded by ``prepare.seed``), out
of the database and the training set (``graphhash.data.split.validation_split``). Each row is ``dvc repro`` in the
dataset's DVC project ``bench/.work/validation-<dataset>`` (``common.Project``): params.yaml's defaults, a
``--preset`` if given, the row's ``section.key=value`` changes, the code lengths ``--bits`` and the baselines
``--baselines`` (scored by the same run, on the same split), and with ``--seeds`` once per seed (``represent.seed``,
``hash.seed`` and ``baselines.seed`` together; the validation queries stay the same draw). DVC reruns only what a
row changes: the features are extracted once per dataset, and a sweep of a baseline's param reruns that baseline
alone. Scores: mAP@1000 (and mAP@all) of NRDH's codes (``nrdh-gcn``) and of each baseline, the cosine ranking of
the raw features as reference; mean ± standard deviation over the seeds.

    python bench/validation.py --dataset digits --sweep represent.steps=200,400,800,1600
    python bench/validation.py --dataset cifar10 --ablation            # from the paper's settings to the defaults
    python bench/validation.py --dataset subset --baselines bihalf agh --sweep baselines.bihalf.steps=1000,10000 \\
        --sweep baselines.agh.anchors=100,1000

Datasets (``--dataset``), each with its validation queries per class: ``digits`` (the embedded default, 16 per
class), ``cifar10`` (all 60,000 CIFAR-10 images: 500 per class from the 50,000 training images), ``subset``
(5,000 CIFAR-10 images, ``split: random, limit_per_class: 500, query_size: 50``: 45 per class from the 4,500
training images), ``tinyimagenet`` (Tiny ImageNet's 20 classes of 64 x 64 photos, 550 each: 50 test queries per
class left out, 50 per class from the other 500) and ``cars`` (Stanford Cars' 50 fine-grained models, about 40
photos each: 5 test queries per class left out, 5 per class from the rest), both folders of images (``prepare.source:
folder``) extracted once from their tars into ``bench/.work/datasets/``, and ``mirflickr`` (MIRFlickr-25K's tags,
multi-label, as ``bench/mirflickr.py`` runs them: 2,000 test queries left out, 2,000 validation queries from the other
18,015 items, counts in all). ``--stages`` writes, instead of the retrieval table, where each stage of NRDH stands on
the same rows (``stage_scores``): which stage loses what. The table is written
into ``docs/results/validation.md`` between markers named by ``--name`` (by default the command line's arguments), so
a rerun of a study replaces its table.
"""

from __future__ import annotations

import argparse
import logging
import re
import shlex
import sys
import tarfile
from pathlib import Path

import numpy as np
from common import CIFAR_TAR, RESULTS, WORK, Project, params, require, write_report
from common import DATASETS as SHARED

from graphhash.evaluation.metrics import cosine_map, evaluate
from graphhash.files.codes import code_file, pack, read_codes, unpack
from graphhash.files.features import read_features, read_rows
from graphhash.files.neighbours import read_neighbours
from graphhash.files.representations import read_representations
from graphhash.graphs.knn import TrainingSet
from graphhash.nrdh.encoder import GraphInput
from graphhash.nrdh.hashnet import rotated_targets
from graphhash.params.all import render

TINY_TAR, CARS_TAR, TAGS = SHARED / "tinyimagenet20.tar", SHARED / "stanfordcars50.tar", SHARED / "mirflickr25k-tags"
FOLDERS = WORK / "datasets"  # the image tars, extracted once


def folder(name: str, query_size: int) -> dict:
    """The prepare section of a folder of class folders extracted from a tar (``<FOLDERS>/<name>``)."""
    return {"source": "folder", "path": str(FOLDERS / name), "split": "random", "query_size": query_size}


DATASETS = {  # name: (the data's params sections, validation queries per class, the file it needs)
    "digits": ({}, 16, None),
    "cifar10": ({"prepare": {"source": "cifar10", "path": str(CIFAR_TAR), "split": "auto"}}, 500, CIFAR_TAR),
    "subset": ({"prepare": {"source": "cifar10", "path": str(CIFAR_TAR), "split": "random", "limit_per_class": 500,
                            "query_size": 50}}, 45, CIFAR_TAR),
    "tinyimagenet": ({"prepare": folder("tinyimagenet20", 50)}, 50, TINY_TAR),
    "cars": ({"prepare": folder("stanfordcars50", 5)}, 5, CARS_TAR),
    "mirflickr": ({"prepare": {"source": "mirflickr_tags", "path": str(TAGS), "split": "random", "query_size": 2000}},
                  2000, TAGS),
}  # fmt: skip


def extracted(tar: Path) -> None:
    """The tar's folder under ``FOLDERS`` (made once; the tars hold one top folder each)."""
    name = tar.name.removesuffix(".tar")
    if not (FOLDERS / name).is_dir():
        FOLDERS.mkdir(parents=True, exist_ok=True)
        with tarfile.open(tar) as archive:
            archive.extractall(FOLDERS / f".{name}.partial", filter="data")
        (FOLDERS / f".{name}.partial" / name).rename(FOLDERS / name)


SEEDED = ("represent.seed", "hash.seed", "baselines.seed")
METHOD = "nrdh-gcn"

# From NRDH as published (the paper preset) to the defaults, one change at a time; each row keeps those above.
ABLATION = [
    ("paper (GCN, M = 10 random nodes, rho 0.4, p 0.8)", []),
    ("+ ITQ-rotated targets (hash.target)", ["hash.target=rotated"]),
    ("+ kNN graphs (graph.kind)", ["graph.kind=knn"]),
    ("+ p = 0.3 (represent.gcn.p)", ["represent.gcn.p=0.3"]),
    ("+ graph at inference (hash.input)", ["hash.input=graph"]),
    ("+ a 64-d representation (represent.latent)", ["represent.latent=64"]),
    ("+ the similarity and pull terms (hash.similarity, hash.gamma)", ["hash.similarity=2", "hash.gamma=6"]),
    ("+ the defaults' training lengths = the defaults",
     ["represent.steps=800", "represent.graphs_per_step=32", "hash.steps=600"]),
]  # fmt: skip


def row_params(args: argparse.Namespace, changes: list[str], seed: int) -> tuple[str, dict]:
    """The run name and the params of one row with one seed."""
    data, per_class, _ = DATASETS[args.dataset]
    data = {"prepare": {**data.get("prepare", {}), "validation_size": per_class}}
    values = params(*([args.preset] if args.preset else []), changes=[*changes, *(f"{k}={seed}" for k in SEEDED)],
                    **data, codes={"bits": args.bits, "filters": ["gcn"]},
                    baselines={"methods": args.baselines or ["itq"]},
                    evaluate={"map_at": [1000], "figure_queries": 0, "cosine_queries": 0})  # fmt: skip
    name = re.sub(r"[^\w.=,-]+", "_", " ".join([*changes, args.preset or "", f"s{seed}"])).strip("_")
    return name, values


def run_row(project: Project, args: argparse.Namespace, changes: list[str], seed: int) -> dict:
    """The metrics of one row's run with one seed."""
    return project.run(*row_params(args, changes, seed))["metrics"]


STAGE_QUERIES = 1000  # training items drawn as queries (seeded) by ``stage_scores``: at most a third of them


def stage_scores(project: Project, args: argparse.Namespace, changes: list[str], seed: int) -> dict[str, float]:
    """Where each stage's ranking stands, for one row's run with one seed: mAP@1000 of ranking the other training
    items by cosine similarity of the raw features, of the graph inputs (``hash.input: graph``), of the node
    representations and of their rotated targets, then by Hamming distance of the signs of those targets and of
    the hash network's codes, ``STAGE_QUERIES`` training items as queries. Every stage has these items (the
    representations exist for training items only), so the columns compare stages, not protocols; and ``rank
    16``, the share of the representations' variance in their 16 leading principal directions."""
    name, values = row_params(args, changes, seed)
    project.run(name, values)
    (project.root / "params.yaml").write_text(render(values), encoding="utf-8")
    project.dvc("repro", log=project.runs / f"{name}.stages.log")  # the run's outputs back in the workspace
    fs = read_features(project.path("features"))
    x = read_rows(fs.features)
    train = np.flatnonzero(fs.train)
    labels = fs.labels[train]
    draw = np.random.default_rng(0).permutation(len(train))
    count = min(STAGE_QUERIES, len(train) // 3)
    queries, database = np.sort(draw[:count]), np.sort(draw[count:])

    def ranked(v: np.ndarray) -> float:
        return cosine_map(v[queries], v[database], labels[queries], labels[database], (1000,))["map@1000"]

    def hamming(codes: np.ndarray, bits: int) -> float:
        packed = pack(codes)
        return evaluate(packed[queries], packed[database], labels[queries], labels[database], bits, (1000,))["map@1000"]

    graph, hashing = values["graph"], values["hash"]
    found = {"raw features": ranked(x[train])}
    if hashing["input"] == "graph":
        graph_input = GraphInput(graph["rho"], hashing["input_p"], graph["nodes"] - 1)
        neighbours = read_neighbours(project.path("neighbours"), len(fs.ids), graph_input.neighbours)
        found["graph inputs"] = ranked(graph_input.inputs(TrainingSet(x[train]), x, neighbours)[train])
    train_ids = fs.ids_where(fs.train)
    for bits in args.bits:
        z = read_representations(project.path("representations") / "gcn" / f"{bits}.h5").values
        variance = np.linalg.svd(z - z.mean(0), compute_uv=False) ** 2
        targets = rotated_targets(z, hashing["seed"], bits)
        codes = read_codes(code_file(project.path("codes") / METHOD, METHOD, bits, fs.modalities[0]))
        where = {item: row for row, item in enumerate(codes.database_ids)}
        network = unpack(codes.database[[where[item] for item in train_ids]], bits)
        found |= {f"representation {bits}": ranked(z), f"rank 16 {bits}": variance[:16].sum() / variance.sum(),
                  f"rotated targets {bits}": ranked(targets),
                  f"signs of the targets {bits}": hamming(targets >= 0, bits),
                  f"hash network {bits}": hamming(network, bits)}  # fmt: skip
    return found


def cells(runs: list[dict], method: str, bits: list[int]) -> str:
    """mAP@1000 (mAP@all) at each code length, mean ± std over the runs (the seeds)."""
    out = []
    for b in bits:
        found = np.array([[run[method][str(b)]["map@1000"], run[method][str(b)]["map@all"]] for run in runs])
        spread = f" ± {found[:, 0].std():.4f}" if len(runs) > 1 else ""
        out.append(f"{found[:, 0].mean():.4f}{spread} ({found[:, 1].mean():.4f})")
    return " | ".join(out)


def rows(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    """(name, changes) of every row: the ablation's walk, or the sweeps' values and the named rows, or the changes
    alone."""
    if args.ablation:
        walked, changes = [], list(args.changes)
        for name, step in ABLATION:
            changes = [*changes, *step]
            walked.append((name, changes))
        return walked
    swept = [sweep.split("=", 1) for sweep in args.sweep or []]
    found = [(f"{key}={v}", [*args.changes, f"{key}={v}"]) for key, values in swept for v in values.split(",")]
    for row in args.row or []:
        name, _, changes = row.partition("=")
        found.append((name, [*args.changes, *changes.split()]))
    return found or [(" ".join(args.changes) or "params.yaml", list(args.changes))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=list(DATASETS), required=True)
    parser.add_argument("--preset", help="a preset applied over the defaults first, e.g. paper")
    parser.add_argument("changes", nargs="*", help="section.key=value changes, applied in order")
    parser.add_argument(
        "--sweep",
        action="append",
        help="section.key=v1,v2,...: one row per value, after the changes (repeatable: the rows of every sweep)",
    )
    parser.add_argument("--row", action="append", help="'name=section.key=v section.key=v ...': a row of its own")
    parser.add_argument("--ablation", action="store_true", help="walk from the paper preset to the defaults")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="run every row with each seed")
    parser.add_argument("--bits", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--baselines", nargs="*", default=["itq"], help="baselines.methods scored on the same split")
    parser.add_argument(
        "--stages",
        action="store_true",
        help="instead of the retrieval table, where each stage's ranking stands (stage_scores)",
    )
    parser.add_argument("--name", help="the table's block in docs/results/validation.md (default: the arguments)")
    args = parser.parse_args()
    if args.ablation:
        args.preset = "paper"
    needs = DATASETS[args.dataset][2]
    if needs is not None:
        require(needs, "the datasets live in ../shared/datasets")
        if needs.suffix == ".tar" and needs != CIFAR_TAR:
            extracted(needs)
    logging.basicConfig(level=logging.WARNING)
    project = Project(f"validation-{args.dataset}")
    if args.stages:
        return stages_table(project, args)
    found = {name: [run_row(project, args, changes, seed) for seed in args.seeds] for name, changes in rows(args)}
    first = next(iter(found.values()))
    multi_label = args.dataset == "mirflickr"  # its sizes count items in all
    sizes = f"{DATASETS[args.dataset][1]} validation queries {'in all' if multi_label else 'per class'}"
    header = "| " + " | ".join(f"{b} bits mAP@1000 (mAP@all)" for b in args.bits) + " |"
    rule = "|" + " ---: |" * len(args.bits)
    command = shlex.join(["python", "bench/validation.py", *sys.argv[1:]])
    lines = [f"`{command}`: {args.dataset}, {sizes}, seeds {', '.join(map(str, args.seeds))}", "",
             f"| method, setting {header}", f"| --- {rule}",
             f"| cosine ranking of the raw features | {first[0]['cosine']['map@1000']:.4f} "
             f"({first[0]['cosine']['map@all']:.4f}) |" + " |" * (len(args.bits) - 1)]  # fmt: skip
    baseline_sweep = bool(args.sweep) and all(sweep.startswith("baselines.") for sweep in args.sweep)
    for method in args.baselines or []:  # a baseline sweep: the rows that change this baseline
        for name, runs in found.items() if baseline_sweep else [("params.yaml", first)]:
            if not baseline_sweep or name.startswith(f"baselines.{method}."):
                lines.append(f"| {method}, {name} | {cells(runs, method, args.bits)} |")
    if not baseline_sweep:
        lines += [f"| NRDH, {name} | {cells(runs, METHOD, args.bits)} |" for name, runs in found.items()]
    write_report(RESULTS / "validation.md", lines, args.name or f"validation {' '.join(sys.argv[1:])}")


STAGES = ["representation", "rotated targets", "signs of the targets", "hash network", "rank 16"]


def stages_table(project: Project, args: argparse.Namespace) -> None:
    """``--stages``: ``stage_scores`` of every row, mean ± std over the seeds, written like the retrieval table."""
    command = shlex.join(["python", "bench/validation.py", *sys.argv[1:]])
    header = " | ".join(f"{b} bits" for b in args.bits)
    lines = [f"`{command}`: {args.dataset}, mAP@1000 of up to {STAGE_QUERIES} training items (at most a third) as "
             f"queries against the other training items, seeds {', '.join(map(str, args.seeds))}", "",
             f"| setting, stage | {header} |", "| --- |" + " ---: |" * len(args.bits)]  # fmt: skip

    def cell(values: list[float]) -> str:
        return f"{np.mean(values):.4f}" + (f" ± {np.std(values):.4f}" if len(values) > 1 else "")

    for name, changes in rows(args):
        found = [stage_scores(project, args, changes, seed) for seed in args.seeds]
        for stage in ["raw features", "graph inputs"]:
            if stage in found[0]:
                empty = " |" * (len(args.bits) - 1)
                lines.append(f"| {name}: {stage} | {cell([run[stage] for run in found])} |{empty}")
        for stage in STAGES:
            what = "share of variance in 16 directions" if stage == "rank 16" else stage
            values = " | ".join(cell([run[f"{stage} {b}"] for run in found]) for b in args.bits)
            lines.append(f"| {name}: {what} | {values} |")
    write_report(RESULTS / "validation.md", lines, args.name or f"stages {' '.join(sys.argv[1:])}")


if __name__ == "__main__":
    main()
