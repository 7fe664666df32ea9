"""The generic paired source against the Wiki reader: Wiki's matrices written out in the ``paired`` layout
(``graphhash.data.paired``: ``image.npy``, ``text.npy``, ``ids.txt``, ``query.txt``, and the labels) give the same
run as the ``wiki`` source.

The script reads ``../shared/datasets/wiki`` with ``read_wiki`` and writes its matrices, ids (``<text id>/<image
id>``), test pairs and categories into ``bench/.work/paired_wiki/layout`` (git-ignored): the labels once as the
layout's own (``labels.npy``, ``classes.txt``) and once as a labels file (``labels.csv``, ``prepare.labels``). It then
runs the crossmodal preset (``presets/crossmodal.yaml``, params.yaml's defaults otherwise) on the ``wiki`` source
and on each of the two ``paired`` layouts, each in a scratch DVC project of its own (``common.Project``: no run
restored from another's cache), and compares every output of each ``paired`` run with the ``wiki`` run's, file by
file: byte-identical, or what differs (the JSON keys, the HDF5 datasets and attributes). ``metrics.json`` must be
byte-identical: the script fails otherwise. The table goes into ``docs/benchmarks.md`` (``paired_wiki``).

    python bench/paired_wiki.py     # three runs of the pipeline: about 100 s each on 2 idle cores
"""

from __future__ import annotations

import csv
import json
import logging
import sys
from pathlib import Path

import h5py
import numpy as np
from common import BENCHMARKS, WIKI, WORK, Project, _paths, params, require, write_report

from graphhash.data.paired import PAIRED_FILES, read_wiki

LAYOUT = WORK / "paired_wiki" / "layout"
RUNS = {  # project: (prepare section, what it is)
    "wiki": ({"source": "wiki", "path": str(WIKI)}, "`wiki` source"),
    "own": ({"source": "paired", "path": str(LAYOUT / "own")}, "`paired`, labels.npy and classes.txt"),
    "file": ({"source": "paired", "path": str(LAYOUT / "file"), "labels": str(LAYOUT / "labels.csv")},
             "`paired`, prepare.labels: labels.csv"),
}  # fmt: skip


def write_layouts() -> None:
    """Wiki's matrices, ids and test pairs in the paired layout, twice: with its own labels (``own``) and without
    (``file``, with ``labels.csv`` beside it)."""
    wiki = read_wiki(WIKI)
    for name in ("own", "file"):
        folder = LAYOUT / name
        folder.mkdir(parents=True, exist_ok=True)
        for modality, x in wiki.views.items():
            np.save(folder / f"{modality}.npy", x)
        (folder / PAIRED_FILES["ids"]).write_text("".join(f"{i}\n" for i in wiki.ids), encoding="utf-8")
        queries = [item_id for item_id, query in zip(wiki.ids, wiki.query, strict=True) if query]
        (folder / PAIRED_FILES["query"]).write_text("".join(f"{i}\n" for i in queries), encoding="utf-8")
    np.save(LAYOUT / "own" / PAIRED_FILES["labels"], wiki.labels)
    (LAYOUT / "own" / PAIRED_FILES["classes"]).write_text("".join(f"{c}\n" for c in wiki.classes), encoding="utf-8")
    with (LAYOUT / "labels.csv").open("w", newline="", encoding="utf-8") as f:
        rows = ([item_id, wiki.classes[c]] for item_id, c in zip(wiki.ids, wiki.labels, strict=True))
        csv.writer(f).writerows([["id", "label"], *rows])


def outputs(project: Project) -> dict[str, Path]:
    """Every output file of the project's run, by its path relative to the project (dvc.yaml's ``vars.paths``)."""
    found = {}
    for relative in _paths(project.root).values():
        path = project.root / relative
        for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
            if file.is_file():
                found[str(file.relative_to(project.root))] = file
    return found


def difference(a: Path, b: Path) -> str:
    """What differs between two output files of the same name: '' when their bytes are the same."""
    if a.read_bytes() == b.read_bytes():
        return ""
    if a.suffix == ".json":
        x, y = (json.loads(p.read_text(encoding="utf-8")) for p in (a, b))
        return "keys " + ", ".join(sorted(k for k in x.keys() | y.keys() if x.get(k) != y.get(k)))
    if a.suffix == ".h5":
        with h5py.File(a, "r") as x, h5py.File(b, "r") as y:
            names: list[str] = []
            x.visit(names.append)
            data = [n for n in names if isinstance(x[n], h5py.Dataset) and not np.array_equal(x[n][()], y[n][()])]
            attrs = sorted(k for k in x.attrs.keys() | y.attrs.keys() if str(x.attrs.get(k)) != str(y.attrs.get(k)))
        parts = [f"datasets {', '.join(data)}" if data else "", f"attributes {', '.join(attrs)}" if attrs else ""]
        return "; ".join(part for part in parts if part) or "bytes only"
    return "bytes"


def grouped(differing: dict[str, str]) -> str:
    """The differing files, those of one name and one difference together (``model.json`` of every network)."""
    groups: dict[tuple[str, str], list[str]] = {}
    for path, what in differing.items():
        groups.setdefault((Path(path).name, what), []).append(path)
    return "; ".join(f"`{paths[0]}`" + (f" and {len(paths) - 1} more `{name}`" if len(paths) > 1 else "") + f" ({what})"
                     for (name, what), paths in groups.items()) or "none"  # fmt: skip


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    require(WIKI / "raw_features.mat", "the Wiki dataset lives in ../shared/datasets/wiki")
    write_layouts()
    projects = {}
    for name, (prepare, _) in RUNS.items():
        projects[name] = Project(f"paired_wiki-{name}")
        projects[name].run("crossmodal", params("crossmodal", prepare=prepare))
    reference = outputs(projects["wiki"])
    lines = ["The crossmodal preset (params.yaml's defaults otherwise) on Wiki, read by the `wiki` source and by the "
             "`paired` source from Wiki's matrices, ids, test pairs (`query.txt`) and categories written in its "
             "layout (`bench/paired_wiki.py`); each run in a DVC project of its own. Every output file of each "
             "`paired` run against the `wiki` run's:", "", "| run | output files | byte-identical | differing "
             "(what differs) |", "| --- | ---: | ---: | --- |"]  # fmt: skip
    identical = True
    for name in ("own", "file"):
        found = outputs(projects[name])
        if set(found) != set(reference):
            sys.exit(f"paired_wiki: the {name} run's outputs {sorted(set(found) ^ set(reference))} differ in name")
        differing = {path: difference(reference[path], found[path]) for path in reference}
        differing = {path: what for path, what in differing.items() if what}
        identical = identical and not any(path.endswith("metrics.json") for path in differing)
        lines.append(
            f"| {RUNS[name][1]} | {len(reference)} | {len(reference) - len(differing)} | {grouped(differing)} |"
        )
    lines += ["", f"`metrics/metrics.json`: {'byte-identical in both' if identical else 'DIFFERENT'}. The features "
              "file's `backbone` attribute (and the hash networks' `model.json`, which copies it) reads "
              "`none (<source> vectors)`; an item's bytes under the manifest's `content_sha256` are its rows and "
              "its label (`PairedSource.read`), so labels from a file change that digest."]  # fmt: skip
    write_report(BENCHMARKS, lines, block="paired_wiki")
    if not identical:
        sys.exit("paired_wiki: metrics.json differs between the wiki and paired sources")


if __name__ == "__main__":
    main()
