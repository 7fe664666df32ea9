"""README's "Your own images", run for real: 200 photos as a flat unlabelled tree, as class folders, and with a
labels file, each an experiment (``dvc exp run -S ...``) on a fresh clone of the repository; then ``graphhash
search`` of one photo. Writes the commands and their real output into README.md (the ``examples`` block).

The photos are 20 of each of the first 10 classes of ``../shared/datasets/tinyimagenet20.tar`` (64 x 64 JPEGs),
copied to ``bench/.work/own-images/photos/2024-0<m>/IMG_<n>.jpg`` (m cycles 1-3, no hint of the class); the class
folders and ``labels.csv`` hold the same files. About 6 minutes on 2 cores.

    python bench/own_images.py
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from common import DATASETS, REPO, WORK, code_digest, require, write_report

TAR = DATASETS / "tinyimagenet20.tar"
CLASSES, PER_CLASS = 10, 20
HERE = WORK / "own-images"


def photos() -> tuple[Path, Path, Path]:
    """The flat tree, the class folders and the labels file (made once)."""
    flat, classes, labels = HERE / "photos", HERE / "classes", HERE / "labels.csv"
    if labels.is_file():
        return flat, classes, labels
    with tarfile.open(TAR) as tar:
        members = sorted((m for m in tar.getmembers() if m.isfile() and m.name.endswith(".jpg")), key=lambda m: m.name)
        by_class: dict[str, list[tarfile.TarInfo]] = {}
        for member in members:
            by_class.setdefault(member.name.split("/")[1], []).append(member)
        rows = []
        for n, (name, member) in enumerate(((c, m) for c in sorted(by_class)[:CLASSES]
                                            for m in by_class[c][:PER_CLASS]), start=1):  # fmt: skip
            rel = f"2024-0{n % 3 + 1}/IMG_{n:04d}.jpg"
            data = tar.extractfile(member).read()
            for path in (flat / rel, classes / name / Path(rel).name):
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
            rows.append((rel, name))
    with labels.open("w", newline="") as f:
        csv.writer(f).writerows([("path", "label"), *rows])
    return flat, classes, labels


def shell(cwd: Path, command: str) -> str:
    """Run ``command`` in ``cwd`` with this Python's tools first; its output as a console shows it."""
    tools = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{tools}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(cwd / "src"),
           "COLUMNS": "120", "DVC_SITE_CACHE_DIR": str(HERE / "dvc-site")}  # fmt: skip
    done = subprocess.run(command, shell=True, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{command} failed in {cwd}:\n{done.stdout}\n{done.stderr}")
    return done.stdout.rstrip()


def example(name: str, sets: list[str], search: str | None = None) -> list[str]:
    """One example on a fresh clone: the experiment, its metrics and experiments tables (and a search)."""
    clone = HERE / "runs" / name
    run = "dvc exp run " + " ".join(f"-S {s}" for s in sets)
    done = clone / ".git" / "graphhash-example"  # the experiment that ran in this clone, and with which code
    ran = f"{run}\n{code_digest(REPO)}"
    if not done.is_file() or done.read_text() != ran:
        shutil.rmtree(clone, ignore_errors=True)
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
        shell(clone, run + " -q")
        done.write_text(ran)
    # the data's columns (its params, and the hashes of data/, src/ and stages/ deps) dropped: 120 columns
    commands = ["dvc metrics show", "dvc exp show --only-changed --drop 'Created|prepare|data|src|stages' --no-pager"]
    if search:
        commands.append(search)
    lines = [f"$ {run}"]
    for command in commands:
        lines += [f"$ {command}", shell(clone, command)]
    return lines


def main() -> None:
    require(TAR, "the Tiny ImageNet subset lives in ../shared/datasets")
    flat, classes, labels = photos()
    where = "~/Pictures/photos"  # how the README shows the folder
    shown = {str(flat): where, str(classes): "~/Pictures/by-class", str(labels): "labels.csv"}
    first = sorted(p.relative_to(flat).as_posix() for p in flat.rglob("*.jpg"))[0]
    runs = [
        ("A flat tree of unlabelled photos, then a search with one of them", "flat",
         ["prepare.source=folder", f"prepare.path={flat}", "prepare.labels=none"],
         f"graphhash search {flat / first} --k 5"),
        ("The same photos in class folders (2 queries per class)", "classes",
         ["prepare.source=folder", f"prepare.path={classes}", "prepare.query_size=2"], None),
        ("The flat tree with a labels file", "labels",
         ["prepare.source=folder", f"prepare.path={flat}", f"prepare.labels={labels}", "prepare.query_size=2"], None),
    ]  # fmt: skip
    lines = []
    for title, name, sets, search in runs:
        text = "\n".join(example(name, sets, search))
        for path, alias in shown.items():
            text = text.replace(path, alias)
        lines += [f"{title}:", "", "```", text, "```", ""]
    write_report(REPO / "README.md", lines[:-1], "examples")


if __name__ == "__main__":
    main()
