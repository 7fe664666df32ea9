"""Choose the cross-modal settings (xmodal-nrdh: ``presets/crossmodal.yaml``) on validation splits of the training
pairs of two paired datasets, never their queries; score the cross-modal baselines on the same splits.

Every row is a validation run of the pipeline (``prepare.validation_size``, as in ``bench/validation.py``): the
dataset's test pairs are left out, and 20% of the training pairs of each category become the queries, the others the
database and training set. Datasets (``--dataset``):

- ``wiki``: the Wikipedia image-text pairs (``../shared/datasets/wiki``).
- ``digits``: a second paired dataset of another kind, made here: scikit-learn's 1,797 digits as two views of the
  same item, its ``image`` view (the EfficientNet-Lite0 features of the embedded default's run, extracted in the
  ``digits`` project) and, as its ``text`` view, the 64 grey levels of the 8x8 image; written in the Wiki dataset's
  file layout to ``bench/.work/digits-views`` and read by the ``wiki`` source. The default run's queries are the
  test pairs (left out), its training items the pool.

Each row is ``dvc repro`` in the dataset's project (``common.Project``) with params.yaml's defaults, a ``--preset``
if given, then the row's ``section.key=value`` changes, scored by the evaluate stage in both cross-modal directions
(mAP@all; same class, Hamming ties by database index). The baselines (``--baselines``, default cvh, cmfh and
cca_itq) run one per code length on the same split (one that refuses a code length, as CVH and CCA-ITQ refuse more
bits than Wiki's 9 shared directions, is shown as "-"). Every row runs once per seed (``--seeds``: the split and
represent.seed, hash.seed and baselines.seed together) and reports the mean over seeds; the table is written into
``docs/results/wiki.md`` (where the preset's choices are explained) between markers named by ``--name`` (by default
the arguments).

    python bench/xmodal_validation.py --dataset wiki --preset crossmodal --sweep hash.dropout=0,0.2,0.5
    python bench/xmodal_validation.py --dataset digits --preset crossmodal --row "default settings="
"""

from __future__ import annotations

import argparse
import logging
import re
import shlex
import sys
from pathlib import Path

import numpy as np
import scipy.io
from common import RESULTS, WIKI, WORK, Project, params, require, write_report
from sklearn.datasets import load_digits

from graphhash.files.features import read_features
from graphhash.presets import flat

SHARE = 0.2  # validation queries: this fraction of each category's training pairs
SEEDED = ("prepare.seed", "represent.seed", "hash.seed", "baselines.seed")
WAYS = ["image->text", "text->image"]


def digits_views() -> Path:
    """The digits as two views in the Wiki dataset's layout (the module's text), written once."""
    folder = WORK / "digits-views"
    if (folder / "raw_features.mat").is_file():
        return folder
    project = Project("digits")
    project.run("features", params(), targets=("extract",))
    fs = read_features(project.path("features"))
    pixels = load_digits().data[[int(item_id.split("/")[1]) for item_id in fs.ids]]
    folder.mkdir(parents=True, exist_ok=True)
    parts = {"tr": fs.train, "te": fs.query}
    scipy.io.savemat(folder / "raw_features.mat", {
        **{f"I_{part}": fs.features[mask].astype(np.float64) for part, mask in parts.items()},
        **{f"T_{part}": pixels[mask].astype(np.float64) for part, mask in parts.items()},
    })  # fmt: skip
    for part, name in (("tr", "trainset_txt_img_cat.list"), ("te", "testset_txt_img_cat.list")):
        rows = np.flatnonzero(parts[part])
        (folder / name).write_text("".join(f"pixels{r} image{r} {fs.labels[r] + 1}\n" for r in rows), encoding="utf-8")
    (folder / "categories.list").write_text("\n".join(str(d) for d in range(10)) + "\n", encoding="utf-8")
    return folder


DATASETS = {"wiki": lambda: WIKI, "digits": digits_views}


def run(project: Project, args: argparse.Namespace, folder: Path, changes: list[str], seed: int, **sections: dict):
    """One row's run with one seed: its metrics, or None where a stage refused the params."""
    preset = [args.preset] if args.preset else []
    values = params(*preset, changes=[*changes, *(f"{key}={seed}" for key in SEEDED)], **sections,
                    prepare={"source": "wiki", "path": str(folder), "validation_size": SHARE},
                    evaluate={"figure_queries": 0, "map_at": [50]})  # fmt: skip
    parts = [*changes, *(f"{key}={value}" for key, value in flat(sections).items()), f"s{seed}"]
    name = re.sub(r"[^\w.=,-]+", "_", " ".join(parts))
    found = project.run(name.strip("_"), values, check=False)
    return None if found is None else found["metrics"]


def cells(runs: list[dict | None], method: str, bits: int) -> str:
    """image->text / text->image mAP@all, the mean over seeds; "-" where a run refused."""
    if any(found is None for found in runs):
        return "-"
    return " / ".join(f"{np.mean([found[method][str(bits)][way]['map@all'] for found in runs]):.4f}" for way in WAYS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=sorted(DATASETS), required=True)
    parser.add_argument("--bits", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--preset", help="a preset applied over params.yaml (presets/<name>.yaml), e.g. crossmodal")
    parser.add_argument("--baselines", nargs="*", default=["cvh", "cmfh", "cca_itq"], help="baselines.methods names")
    parser.add_argument("--sweep", action="append", default=[], help="section.key=v1,v2,...: one row per value")
    parser.add_argument("--row", action="append", default=[], help="'name=section.key=v section.key=v ...'")
    parser.add_argument("--name", help="the table's block in docs/results/wiki.md (default: the arguments)")
    args = parser.parse_args()
    if args.dataset == "wiki":
        require(WIKI, "the Wikipedia features live in ../shared/datasets/wiki")
    logging.basicConfig(level=logging.WARNING)
    folder = DATASETS[args.dataset]()
    project = Project(f"xmodal-{args.dataset}")
    rows: list[tuple[str, list[str]]] = []
    for sweep in args.sweep:
        key, values = sweep.split("=", 1)
        rows += [(f"{key}={value}", [f"{key}={value}"]) for value in values.split(",")]
    for row in args.row:
        name, _, changes = row.partition("=")
        rows.append((name, changes.split()))
    rows = rows or [("settings", [])]
    command = shlex.join(["python", "bench/xmodal_validation.py", *sys.argv[1:]])
    lines = [f"`{command}`: {args.dataset}, {SHARE:.0%} of each "
             f"category's training pairs as validation queries, seeds {', '.join(map(str, args.seeds))}; mAP@all "
             f"{' / '.join(WAYS)}, the mean over the seeds", "",
             "| method, setting | " + " | ".join(f"{b} bits" for b in args.bits) + " |",
             "| --- |" + " --- |" * len(args.bits)]  # fmt: skip
    for method in args.baselines:
        by_bits = [[run(project, args, folder, [], seed, codes={"bits": [b]}, baselines={"methods": [method]})
                    for seed in args.seeds] for b in args.bits]  # fmt: skip
        lines.append(
            f"| {method} | "
            + " | ".join(cells(runs, method, b) for runs, b in zip(by_bits, args.bits, strict=True))
            + " |"
        )
    for name, changes in rows:
        runs = [run(project, args, folder, changes, seed, codes={"bits": args.bits}, baselines={"methods": ["lsh"]})
                for seed in args.seeds]  # fmt: skip
        lines.append(f"| xmodal-nrdh, {name} | " + " | ".join(cells(runs, "nrdh-gcn", b) for b in args.bits) + " |")
    write_report(RESULTS / "wiki.md", lines, args.name or f"xmodal_validation {' '.join(sys.argv[1:])}")


if __name__ == "__main__":
    main()
