"""The ``evaluate`` stage: every code file the params name, against the same queries, database and metrics.

Code files are found in the codes folder by their ``method`` and ``bits`` attributes; those the params do
not name (left behind by a filter or a code length since removed) are ignored, and a missing one is an
error. Writes the metrics (numbers only: ``{method: {bits: {metric: value}}}``, plus ``cosine``, the ranking
of the database by the cosine similarity of the raw features: what binarisation costs), the results tables
(methods x bits), the precision-recall curves (one CSV per curve and code length, a row per method and
point) and, for image datasets, a top-10 retrieval figure per code file.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np

from graphhash.data.sources import open_source
from graphhash.errors import GraphhashError
from graphhash.evaluation.figures import fixed_queries, retrieval_figure
from graphhash.evaluation.metrics import RECALL_GRID, cosine_map, evaluate
from graphhash.files.atomic import write_bytes, write_csv, write_json, write_text
from graphhash.files.codes import nrdh_method, read_code_kind, read_codes
from graphhash.files.features import open_features
from graphhash.files.manifest import Manifest
from graphhash.graphs.knn import unit_features
from graphhash.params.baselines import BaselinesParams
from graphhash.params.codes import CodesParams
from graphhash.params.evaluate import EvaluateParams

log = logging.getLogger(__name__)

SUMMARY = ("map@all", "map@1000", "map@100")


def code_files(folder: Path, methods: list[str], bits: list[int]) -> list[Path]:
    """The code file of every method and code length asked for, found under ``folder`` by their attributes."""
    wanted = {(method, b) for method in methods for b in bits}
    found: dict[tuple[str, int], Path] = {}
    for path in sorted(folder.rglob("*.h5")):
        kind = read_code_kind(path)
        if kind in wanted:
            found[kind] = path
        else:
            log.info("not evaluated (not named by codes, baselines.methods): %s", path)
    missing = sorted(wanted - set(found))
    if missing:
        names = ", ".join(f"{m} at {b} bits" for m, b in missing)
        raise GraphhashError(
            f"evaluate: no code file in {folder} for {names}; run the stages that write them (dvc repro)"
        )
    return [found[kind] for kind in sorted(found)]


def evaluate_codes(
    codes_folder: Path,
    features_path: Path,
    manifest_path: Path,
    params: EvaluateParams,
    codes: CodesParams,
    baselines: BaselinesParams,
    *,
    metrics_path: Path,
    results_path: Path,
    curves: Path,
    figures: Path,
) -> dict:
    """Evaluate the code files the params name; write the metrics, tables, curves and figures."""
    methods = [*baselines.methods, *(nrdh_method(name) for name in codes.filters)]
    files = code_files(codes_folder, methods, codes.bits)
    manifest = Manifest.load(manifest_path)
    source = open_source(manifest.source, manifest.path)
    draw_figures = params.figure_queries > 0 and not source.holds_vectors
    figures.mkdir(parents=True, exist_ok=True)  # declared output, empty without figures
    metrics: dict = {}
    by_bits: dict[int, dict[str, dict]] = {}
    r = params.radius
    keep = ["map@all", *(f"map@{k}" for k in params.map_at), f"p@r{r}", f"r@r{r}", f"f1@r{r}"]
    for path in files:
        found = read_codes(path)
        result = evaluate(found.query, found.database, found.query_labels, found.database_labels, found.bits,
                          map_at=tuple(params.map_at), radius=r)  # fmt: skip
        metrics.setdefault(found.method, {})[str(found.bits)] = {key: float(result[key]) for key in keep}
        by_bits.setdefault(found.bits, {})[found.method] = result
        if draw_figures:
            queries = fixed_queries(found.query_labels, params.figure_queries)
            png = io.BytesIO()
            retrieval_figure(found, source.image, manifest.classes, queries).save(png, format="PNG")
            write_bytes(figures / f"{found.method}-{found.bits}.png", png.getvalue())
    with open_features(features_path) as fs:  # the query and database rows only, each read once
        ranked = cosine_queries(fs.query, params.cosine_queries)
        query, database = unit_features(fs.features, ranked), unit_features(fs.features, fs.database)
    metrics["cosine"] = cosine_map(query, database, fs.labels[ranked], fs.labels[fs.database], tuple(params.map_at),
                                   normalised=True)  # fmt: skip
    write_json(metrics_path, metrics)
    write_curves(by_bits, curves)
    write_text(results_path, results_table(metrics))
    return metrics


def cosine_queries(query: np.ndarray, count: int) -> np.ndarray:
    """The (N,) mask of the queries the cosine reference ranks for: every query (``count`` 0, or at least as many
    as there are), else ``count`` of them evenly spaced in file order."""
    rows = np.flatnonzero(query)
    if count == 0 or count >= len(rows):
        return query
    mask = np.zeros_like(query)
    mask[rows[np.linspace(0, len(rows) - 1, count).round().astype(np.int64)]] = True
    return mask


def write_curves(by_bits: dict[int, dict[str, dict]], folder: Path) -> None:
    """``<folder>/<curve>/<bits>.csv``, one row per method and point: plots that name no method."""
    for bits, by_method in by_bits.items():
        methods = sorted(by_method)
        rank = [{"method": m, "recall": level, "precision": by_method[m]["pr_by_rank"]["precision"][i]}
                for m in methods for i, level in enumerate(RECALL_GRID)]  # fmt: skip
        write_csv(folder / "pr_rank" / f"{bits}.csv", rank)
        for kind in ("precision", "recall"):
            rows = [{"method": m, "radius": radius, kind: by_method[m]["pr_by_radius"][kind][radius]}
                    for m in methods for radius in range(bits + 1)]  # fmt: skip
            write_csv(folder / f"{kind}_radius" / f"{bits}.csv", rows)


def results_table(metrics: dict) -> str:
    """Markdown: one table per summary metric, methods as rows and code lengths as columns."""
    methods = sorted(m for m in metrics if m != "cosine")
    bits = sorted({int(b) for m in methods for b in metrics[m]})
    lines = ["# Retrieval results", "", "Written by the evaluate stage; see README for the protocol.", ""]
    for key in [k for k in SUMMARY if k in metrics["cosine"]]:
        lines += [f"## {key}", "", "| method | " + " | ".join(f"{b} bits" for b in bits) + " |",
                  "| --- |" + " ---: |" * len(bits)]  # fmt: skip
        for m in methods:
            cells = [f"{metrics[m][str(b)][key]:.4f}" if str(b) in metrics[m] else "" for b in bits]
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        cosine = f"{metrics['cosine'][key]:.4f}"  # no code length: the same ranking in every column
        lines += ["| cosine (real-valued features) | " + " | ".join([cosine] * len(bits)) + " |", ""]
    return "\n".join(lines + _filter_table(metrics, bits))


def _filter_table(metrics: dict, bits: list[int]) -> list[str]:
    """The HAGCN papers' table: graph filter x code length, mAP at the first cut-off of the summary."""
    prefix = nrdh_method("")
    filters = sorted(m.removeprefix(prefix) for m in metrics if m.startswith(prefix))
    key = next((k for k in SUMMARY[1:] if k in metrics["cosine"]), "map@all")
    if not filters:
        return []
    lines = [f"## Graph filters ({key})", "", "| filter | " + " | ".join(f"{b} bits" for b in bits) + " |",
             "| --- |" + " ---: |" * len(bits)]  # fmt: skip
    for f in filters:
        row = metrics[nrdh_method(f)]
        lines.append(f"| {f} | " + " | ".join(f"{row[str(b)][key]:.4f}" if str(b) in row else "" for b in bits) + " |")
    return [*lines, ""]
