"""What the benchmarks share: where things are, the one way they run the pipeline (``Project``), the one way they
change params (``changed``), runs over seeds summarised, and the tables they write into docs/ between markers
(``write_report``).

A benchmark runs the pipeline as a user does: ``Project`` is a scratch DVC project under ``bench/.work/<name>``
(git-ignored) holding copies of the repository's dvc.yaml, stages/ and src/ and its own params.yaml, and ``run``
writes the params and runs ``dvc repro``: dvc.yaml's own stages, commands and paths, in DVC's order. DVC skips
the stages whose code, data and params did not change, and restores from its run cache those run before with the
same inputs, so configurations that share their features extract them once. Each stage's process logs its wall
time and peak memory in its last line, which ``run`` collects with the metrics and curves into a record under
``runs/`` (an interrupted benchmark resumes where it stopped).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from graphhash.files.manifest import Manifest
from graphhash.params.all import check, defaults, render
from graphhash.params.prepare import PrepareParams
from graphhash.pipeline.prepare import prepare
from graphhash.presets import merged, read_preset

REPO = Path(__file__).resolve().parents[1]
DATASETS = REPO.parent / "shared" / "datasets"
CIFAR_TAR = DATASETS / "cifar10-jpeg.tar"
WIKI = DATASETS / "wiki"
RESULTS = REPO / "docs" / "results"
BENCHMARKS = REPO / "docs" / "benchmarks.md"
WORK = REPO / "bench" / ".work"
STAGE_LINE = re.compile(r"graphhash\.pipeline\.stage: (.+) finished in ([\d.]+) s, peak (\d+) MiB")


def require(path: Path, what: str) -> None:
    """Stop the benchmark, saying so, when the data it needs is absent (exit status 0: nothing to measure)."""
    if not path.exists():
        print(f"skipped: {path} not found ({what})")
        sys.exit(0)


def changed(values: dict, changes: list[str]) -> dict:
    """``values`` (params sections) with ``section.key=value`` changes applied in order, the values read as YAML
    (``dvc exp run -S``'s syntax): ``changed(values, ["hash.steps=300", "codes.bits=[16, 64]"])``."""
    for change in changes:
        dotted, separator, text = change.partition("=")
        if not separator:
            sys.exit(f"{change!r}: expected section.key=value")
        *path, key = dotted.split(".")
        nested: dict = {key: yaml.safe_load(text)}
        for part in reversed(path):
            nested = {part: nested}
        values = merged(values, nested)
    return values


def params(*presets: str, changes: list[str] = (), **sections: dict) -> dict:
    """Every section of params.yaml: the defaults, then the ``presets`` (presets/<name>.yaml) in order, then the
    ``sections`` given as mappings (``prepare={"source": "cifar10"}``), then the ``changes``; checked."""
    values = defaults()
    for name in presets:
        values = merged(values, read_preset(name, REPO / "params.yaml"))
    values = changed(merged(values, sections), list(changes))
    return check(values, origin="benchmark params")


CODE = ("stages", "src", "presets", "dvc.yaml", ".dvcignore")  # what a project copies from the repository


def code_digest(root: Path) -> str:
    """16 hex digits of the SHA-256 of the pipeline's code under ``root`` (``CODE``, caches left out)."""
    digest = hashlib.sha256()
    for name in CODE:
        paths = sorted((root / name).rglob("*")) if (root / name).is_dir() else [root / name]
        for path in paths:
            if path.is_file() and "__pycache__" not in path.parts and ".egg-info" not in str(path):
                digest.update(f"{path.relative_to(root)}\0".encode() + path.read_bytes())
    return digest.hexdigest()[:16]


class Project:
    """A scratch DVC project, ``bench/.work/<name>``, running the repository's pipeline (the module's text).

    When a benchmark opens the project, the repository's code is copied into it if it differs from the copy there,
    so a changed module reruns exactly the stages that import it; the stages import that copy (``PYTHONPATH``), the
    code the stages' deps hash, with the Python that runs the benchmark. One benchmark at a time per project.
    """

    def __init__(self, name: str):
        self.root = WORK / name
        self.runs = self.root / "runs"
        self.root.mkdir(parents=True, exist_ok=True)
        self.code = code_digest(REPO)  # the code the runs ran: a record of other code is not reused
        if code_digest(self.root) != self.code:
            for item in CODE:
                source, copy = REPO / item, self.root / item
                if source.is_dir():
                    shutil.rmtree(copy, ignore_errors=True)
                    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
                else:
                    shutil.copy(source, copy)
        changes = self.root / "data" / "changes.jsonl"  # the project's own: graphhash add and remove write it
        if not changes.exists():
            changes.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(REPO / "data" / "changes.jsonl", changes)
        if not (self.root / ".dvc").is_dir():
            self.dvc("init", "--no-scm", "-q")

    def dvc(self, *args: str, log: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
        """A dvc command in the project; its output goes to ``log``. A failure stops the benchmark, naming it, unless
        ``check`` is False."""
        python = str(Path(sys.executable).parent)  # the stages' ``python`` is the benchmark's
        env = {**os.environ, "PYTHONPATH": str(self.root / "src"), "PATH": f"{python}{os.pathsep}{os.environ['PATH']}"}
        done = subprocess.run([str(Path(sys.executable).parent / "dvc"), *args], cwd=self.root, env=env, text=True,
                              capture_output=True)  # fmt: skip
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text(done.stdout + done.stderr, encoding="utf-8")
        if done.returncode != 0 and check:
            where = log or "its output below"
            sys.exit(f"{self.root}: dvc {' '.join(args)} failed; see {where}\n{'' if log else done.stderr[-3000:]}")
        return done

    def path(self, name: str) -> Path:
        """An artefact of the project's run by its name in dvc.yaml's ``vars.paths`` (``features``, ``metrics``...)."""
        return self.root / _paths(self.root)[name]

    def run(self, name: str, values: dict, targets: tuple[str, ...] = (), check: bool = True) -> dict | None:
        """``dvc repro`` (of ``targets``, or of everything) on the params ``values``; its record, kept in
        ``runs/<name>.json`` and reused by a later call with the same code, params and targets (an interrupted
        benchmark resumes where it stopped). The record holds the wall time, each stage that ran
        (``{label: {"seconds", "peak_mib"}}``, e.g. ``represent gcn``), and after a whole run the metrics and the
        precision-by-recall curve of every code length. With ``check`` False a failed run gives None (a stage that
        refuses the params: CVH asked for more bits than its views share)."""
        record_path = self.runs / f"{name}.json"
        if record_path.is_file():
            record = json.loads(record_path.read_text(encoding="utf-8"))
            ran = (record.get("code"), record.get("settings"), record.get("targets"))
            if ran == (self.code, values, list(targets)):
                return record
        (self.root / "params.yaml").write_text(render(values), encoding="utf-8")
        start = time.perf_counter()
        done = self.dvc("repro", *targets, log=self.runs / f"{name}.log", check=check)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            return None
        output = done.stdout + done.stderr
        stages = {m[1]: {"seconds": float(m[2]), "peak_mib": float(m[3])} for m in STAGE_LINE.finditer(output)}
        record: dict[str, Any] = {"settings": values, "targets": list(targets), "code": self.code, "seconds": seconds,
                                  "stages": stages}  # fmt: skip
        if not targets:
            curves = self.path("curves") / "pr_rank"
            record["metrics"] = json.loads(self.path("metrics").read_text(encoding="utf-8"))
            record["pr_rank"] = {path.stem: path.read_text(encoding="utf-8") for path in sorted(curves.glob("*.csv"))}
        self.runs.mkdir(parents=True, exist_ok=True)
        record_path.write_text(json.dumps(record, indent=1), encoding="utf-8")
        print(f"{self.root.name}/{name}: {seconds:.0f} s", flush=True)
        return record

    def records(self) -> dict[str, dict]:
        """Every run recorded so far, by name."""
        return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(self.runs.glob("*.json"))}


def _paths(root: Path) -> dict[str, str]:
    """dvc.yaml's ``vars.paths``."""
    variables = yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8"))["vars"]
    return next(entry["paths"] for entry in variables if isinstance(entry, dict) and "paths" in entry)


def cifar_params(*presets: str, changes: list[str] = (), **sections: dict) -> dict:
    """``params`` for CIFAR-10 from the tar, the standard protocol (queries = the 10,000 test images, database =
    training set = the 50,000 train images), no retrieval figures; then the presets, sections and changes."""
    cifar = {"source": "cifar10", "path": str(CIFAR_TAR), "split": "auto", "limit_per_class": 0}
    values = params(*presets, prepare=cifar, evaluate={"figure_queries": 0})
    return params(changes=list(changes), **merged(values, sections))


def cifar_features() -> Path:
    """The features file of every CIFAR-10 image (EfficientNet-Lite0 at 160 px), made once by the ``extract`` stage
    of the ``cifar10`` benchmark's project (about 7 minutes on 2 cores) and shared by the benchmarks that need it."""
    require(CIFAR_TAR, "the CIFAR-10 tar lives in ../shared/datasets")
    project = Project("cifar10")
    project.run("features", cifar_params(), targets=("extract",))
    return project.path("features")


def cifar_manifest(count: int) -> Manifest:
    """``count`` CIFAR-10 images, half train and half test, equal per class (read from the tar; 0: all), as the
    manifest the extract function takes: the input of the benchmarks that time one stage's function against a bare
    model in one process."""
    require(CIFAR_TAR, "the CIFAR-10 tar lives in ../shared/datasets")
    return prepare(PrepareParams(source="cifar10", path=str(CIFAR_TAR), query_size=1, limit_per_class=count // 20))


def workers_arg(value: str) -> int | str:
    """``--workers`` takes a count or ``auto`` (the stage's default)."""
    return value if value == "auto" else int(value)


def summarise(runs: dict[str, dict], lengths: Callable[[str], list[int]]) -> dict:
    """Every metric of the runs as {"mean", "std" (ddof 0), "runs"} at its place in metrics.json's nesting; the
    cosine ranking (one per run, whatever the code length) under each of the run's code lengths, ``lengths(name)``."""
    values: dict = {}
    for name, run in runs.items():
        metrics = {**run["metrics"], "cosine": {str(b): run["metrics"]["cosine"] for b in lengths(name)}}
        _accumulate(values, metrics)
    return _summarised(values)


def _accumulate(into: dict, found: dict) -> None:
    """Append every number of the nested ``found`` to the list at the same place in ``into``."""
    for key, value in found.items():
        if isinstance(value, dict):
            _accumulate(into.setdefault(key, {}), value)
        else:
            into.setdefault(key, []).append(value)


def _summarised(values: dict) -> dict:
    return {key: _summarised(value) if isinstance(value, dict) else
            {"mean": float(np.mean(value)), "std": float(np.std(value)), "runs": len(value)}
            for key, value in values.items()}  # fmt: skip


def write_report(doc: Path, lines: list[str], block: str = "results") -> None:
    """Put ``lines`` between the ``<!-- <block>:start -->`` and ``<!-- <block>:end -->`` markers of the markdown
    file ``doc`` (a file or a block not there yet gets them at its end), and print them. With ``BENCH_DOCS`` set
    (a trial run), a copy of the file in that folder is written instead."""
    start, end = f"<!-- {block}:start -->", f"<!-- {block}:end -->"
    if os.environ.get("BENCH_DOCS"):  # a trial run: write into a copy of docs/ there, not into the repository's
        trial = Path(os.environ["BENCH_DOCS"]) / doc.relative_to(REPO / "docs")
        if not trial.is_file() and doc.is_file():
            trial.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(doc, trial)
        doc = trial
    text = doc.read_text(encoding="utf-8") if doc.is_file() else ""
    if start not in text:
        text = f"{text.rstrip()}\n\n{start}\n{end}\n" if text else f"{start}\n{end}\n"
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(head + start + "\n" + "\n".join(lines) + "\n" + end + tail, encoding="utf-8")
    print("\n".join(lines))


def seeded_benchmark(description: str, project: str, data: Path, runs: Callable[[int], dict[str, dict]],
                     report: Callable[[Project], None], seeds: list[int]) -> None:  # fmt: skip
    """A benchmark's command line: every run of every seed (``runs(seed)``: {name: params}) in the project, then
    ``report(project)``; ``--report`` only the report; skipped, saying so, without ``data``."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--report", action="store_true", help="only write the report from the runs made")
    parser.add_argument("--seeds", type=int, nargs="+", default=seeds)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if not args.report:
        require(data, "the datasets live in ../shared/datasets")
    bench = Project(project)
    if not args.report:
        for seed in args.seeds:
            for name, values in runs(seed).items():
                bench.run(name, values)
    report(bench)
