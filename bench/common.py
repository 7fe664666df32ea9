"""Shared set-up for the benchmarks: a CIFAR-10 manifest of a given size, extract params, and the whole pipeline
run by its stage functions."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from graphhash.files.manifest import Manifest
from graphhash.params import validate
from graphhash.params.all import SECTIONS
from graphhash.params.extract import ExtractParams
from graphhash.params.prepare import PrepareParams
from graphhash.pipeline.baselines import baseline_codes
from graphhash.pipeline.evaluate import evaluate_codes
from graphhash.pipeline.extract import extract
from graphhash.pipeline.hash import hash_codes
from graphhash.pipeline.neighbours import find_neighbours
from graphhash.pipeline.prepare import prepare
from graphhash.pipeline.represent import represent
from graphhash.runtime import tune_allocator

REPO = Path(__file__).resolve().parents[1]
CIFAR_TAR = REPO.parent / "shared" / "datasets" / "cifar10-jpeg.tar"
RESULTS = REPO / "docs" / "results"
MARKERS = ("<!-- results:start -->", "<!-- results:end -->")


def cifar_manifest(tar: Path, count: int) -> Manifest:
    """``count`` CIFAR-10 images, half train and half test, equal per class (read from the tar); 0: all."""
    if not tar.is_file():
        print(f"skipped: {tar} not found (the CIFAR-10 tar lives in ../shared/datasets)")
        sys.exit(0)
    params = PrepareParams(source="cifar10", path=str(tar), query_size=1, limit_per_class=count // 20)
    return prepare(params)


def workers_arg(value: str) -> int | str:
    """``--workers`` takes a count or ``auto`` (the stage's default)."""
    return value if value == "auto" else int(value)


def extract_params(image_size: int, batch_size: int, workers: int | str, backbone: str = "efficientnet_lite0"):
    return ExtractParams(backbone=backbone, image_size=image_size, batch_size=batch_size, num_workers=workers)


def run_stages(values: dict, work: Path) -> dict:
    """Every stage of dvc.yaml but the search indexes, in order, on the params ``values`` (every section), in the
    folder ``work``: what ``dvc repro`` runs for those params. Returns the evaluate stage's metrics."""
    sections = dict(zip((s.section for s in SECTIONS), validate(values, SECTIONS), strict=True))
    data = work / "data"
    manifest, features, neighbours = data / "manifest.json", data / "features.h5", data / "neighbours.h5"
    prepare(sections["prepare"]).save(manifest)
    extract(Manifest.load(manifest), sections["extract"], features)
    graph, codes = sections["graph"], sections["codes"]
    find_neighbours(features, graph, neighbours, sections["neighbours"])
    for name in codes.filters:
        represent(features, neighbours, name, codes.bits, sections["represent"], graph,
                  out=data / "representations" / name, models=work / "models" / f"gcnae-{name}",
                  losses=work / "metrics" / "losses" / f"represent-{name}")  # fmt: skip
        hash_codes(features, neighbours, data / "representations" / name, name, codes.bits, sections["hash"], graph,
                   codes=data / "codes" / f"nrdh-{name}", models=work / "models" / f"nrdh-{name}",
                   losses=work / "metrics" / "losses" / f"hash-{name}", extract=sections["extract"],
                   manifest=manifest)  # fmt: skip
    for b in codes.bits:
        baseline_codes(features, b, sections["baselines"], data / "codes" / f"baselines-{b}")
    metrics = work / "metrics"
    return evaluate_codes(data / "codes", features, manifest, sections["evaluate"], codes, sections["baselines"],
                          metrics_path=metrics / "metrics.json", results_path=metrics / "results.md",
                          curves=metrics / "curves", figures=metrics / "retrieval")  # fmt: skip


def experiment(root: Path, name: str, values: dict) -> dict:
    """One whole run (``run_stages``) in ``root/work/<name>``, recorded in ``root/runs/<name>.json`` with its wall time,
    metrics and precision-by-recall curves; an existing record is reused, so an interrupted benchmark resumes."""
    record_path = root / "runs" / f"{name}.json"
    if record_path.is_file():
        return json.loads(record_path.read_text(encoding="utf-8"))
    work = root / "work" / name
    start = time.perf_counter()
    metrics = run_stages(values, work)
    curves = {b: (work / "metrics" / "curves" / "pr_rank" / f"{b}.csv").read_text(encoding="utf-8")
              for b in values["codes"]["bits"]}  # fmt: skip
    record = {"seconds": time.perf_counter() - start, "metrics": metrics, "pr_rank": curves}
    record_path.parent.mkdir(parents=True, exist_ok=True)
    record_path.write_text(json.dumps(record, indent=1), encoding="utf-8")
    print(f"{name}: {record['seconds']:.0f} s", flush=True)
    return record


def load_runs(root: Path) -> dict[str, dict]:
    """Every run recorded under ``root/runs``, by name."""
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted((root / "runs").glob("*.json"))}


def results(runs: dict[str, dict], lengths: Callable[[str], list[int]]) -> dict:
    """Every metric of the runs as {"mean", "std" (ddof 0), "runs"} at its place in metrics.json's nesting; the
    cosine ranking (one per run, whatever the code length) under each of the run's code lengths, ``lengths(name)``."""
    values: dict = {}
    for name, run in runs.items():
        metrics = {**run["metrics"], "cosine": {str(b): run["metrics"]["cosine"] for b in lengths(name)}}
        _accumulate(values, metrics)
    return _summarise(values)


def _accumulate(into: dict, found: dict) -> None:
    """Append every number of the nested ``found`` to the list at the same place in ``into``."""
    for key, value in found.items():
        if isinstance(value, dict):
            _accumulate(into.setdefault(key, {}), value)
        else:
            into.setdefault(key, []).append(value)


def _summarise(values: dict) -> dict:
    return {key: _summarise(value) if isinstance(value, dict) else
            {"mean": float(np.mean(value)), "std": float(np.std(value)), "runs": len(value)}
            for key, value in values.items()}  # fmt: skip


def write_report(doc: Path, lines: list[str]) -> None:
    """Put ``lines`` between the results markers of the markdown file ``doc`` (a new file holds only them), and
    print them."""
    start, end = MARKERS
    text = doc.read_text(encoding="utf-8") if doc.is_file() else f"{start}\n{end}\n"
    head, rest = text.split(start)
    _, tail = rest.split(end)
    doc.write_text(head + start + "\n" + "\n".join(lines) + end + tail, encoding="utf-8")
    print("\n".join(lines))


def seeded_benchmark(description: str, root: Path, data: Path, runs: Callable[[int], dict[str, dict]],
                     report: Callable[[], None], seeds: list[int]) -> None:  # fmt: skip
    """A benchmark's command line: every run of every seed (``runs(seed)``: {name: params}, made by ``experiment``
    under ``root``), then ``report()``; ``--report`` only the report; skipped, saying so, without ``data``."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--report", action="store_true", help="only write the report from the runs made")
    parser.add_argument("--seeds", type=int, nargs="+", default=seeds)
    args = parser.parse_args()
    if not args.report:
        if not data.exists():
            print(f"skipped: {data} not found (the datasets live in ../shared/datasets)")
            return
        logging.basicConfig(level=logging.WARNING)
        tune_allocator()
        for seed in args.seeds:
            for name, values in runs(seed).items():
                experiment(root, name, values)
    report()
