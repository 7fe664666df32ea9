"""The ``evaluate`` stage: every code file the params name, against the same queries, database and metrics.

Code files are found in the codes folder by their ``method``, ``bits`` and ``modality`` attributes; those the
params do not name (left behind by a filter or a code length since removed) are ignored, and a missing one is an
error. Every method has one code file per modality of the features file, and every **direction** is scored: the
query items' codes of one modality rank the database items' codes of another (``image->text``, ``text->image``)
or of the same (``image->image``, ``text->text``, for reference), with the same ranking and relevance rules.

Writes the metrics (numbers only: ``{method: {bits: {metric: value}}}`` for a run of one modality, which has one
direction; ``{method: {bits: {direction: {metric: value}}}}`` for several), plus ``cosine``, the ranking of the
database by the cosine similarity of the raw features (what binarisation costs; within one modality only, as
features of two modalities are not comparable), the results tables (methods x bits, one set per direction), the
precision-recall curves (one CSV per curve and code length, a row per method, direction and point) and, for image
datasets, a top-10 retrieval figure per code file.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np

from graphhash.data.sources import SOURCES, open_source
from graphhash.errors import GraphhashError
from graphhash.evaluation.figures import fixed_queries, retrieval_figure
from graphhash.evaluation.metrics import RECALL_GRID, cosine_map, evaluate
from graphhash.files.atomic import write_bytes, write_csv, write_json, write_text
from graphhash.files.codes import CodeSet, find_code_files, nrdh_method, read_codes
from graphhash.files.features import open_features
from graphhash.files.manifest import Manifest, no_label_metrics
from graphhash.graphs.knn import unit_features
from graphhash.params.baselines import BaselinesParams
from graphhash.params.codes import CodesParams
from graphhash.params.evaluate import EvaluateParams

log = logging.getLogger(__name__)

SUMMARY = ("map@all", "map@1000", "map@100")


def directions(modalities: list[str]) -> list[tuple[str, str]]:
    """Every (query modality, database modality): across modalities first, in their order, then within each."""
    across = [(query, database) for query in modalities for database in modalities if query != database]
    return across + [(modality, modality) for modality in modalities]


def direction_name(query: str, database: str) -> str:
    return f"{query}->{database}"


def code_files(folder: Path, methods: list[str], bits: list[int], modalities: list[str]) -> dict[tuple[str, int], dict]:
    """The code file of every method, code length and modality asked for, found under ``folder`` by their
    attributes: ``{(method, bits): {modality: path}}``."""
    wanted = {(method, b, modality) for method in methods for b in bits for modality in modalities}
    found: dict[tuple[str, int, str], Path] = {}
    for kind, path in find_code_files(folder).items():
        if kind in wanted:
            found[kind] = path
        else:
            log.info("not evaluated (not named by codes, baselines.methods or the modalities): %s", path)
    missing = sorted(wanted - set(found))
    if missing:
        names = ", ".join(f"{m} at {b} bits ({modality})" for m, b, modality in missing)
        raise GraphhashError(
            f"evaluate: no code file in {folder} for {names}; run the stages that write them (dvc repro)"
        )
    grouped: dict[tuple[str, int], dict[str, Path]] = {}
    for (method, b, modality), path in sorted(found.items()):
        grouped.setdefault((method, b), {})[modality] = path
    return {kind: {modality: paths[modality] for modality in modalities} for kind, paths in grouped.items()}


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
    manifest = Manifest.load(manifest_path)
    unlabelled = no_label_metrics(manifest.classes)
    if unlabelled:
        log.warning("evaluate: %s; no label metrics written", unlabelled)
        curves.mkdir(parents=True, exist_ok=True)
        figures.mkdir(parents=True, exist_ok=True)
        write_json(metrics_path, {})
        write_text(results_path, f"# Retrieval results\n\nNone: {unlabelled}.\n")
        return {}
    ways = directions(manifest.modalities)
    methods = [*baselines.methods, *(nrdh_method(name) for name in codes.filters)]
    files = code_files(codes_folder, methods, codes.bits, manifest.modalities)
    draw_figures = params.figure_queries > 0 and not SOURCES[manifest.source].holds_vectors
    source = open_source(manifest.source, manifest.path) if draw_figures else None
    figures.mkdir(parents=True, exist_ok=True)  # declared output, empty without figures
    found: dict = {}  # {method: {bits: {direction: {metric: value}}}}
    by_bits: dict[int, dict[str, dict]] = {}  # {bits: {curve label: result}}
    r = params.radius
    keep = ["map@all", *(f"map@{k}" for k in params.map_at), f"p@r{r}", f"r@r{r}", f"f1@r{r}"]
    for (method, bits), paths in files.items():
        sets = {modality: read_codes(path) for modality, path in paths.items()}
        for query, database in ways:
            q, d = sets[query], sets[database]
            result = evaluate(q.query, d.database, q.query_labels, d.database_labels, bits,
                              map_at=tuple(params.map_at), radius=r)  # fmt: skip
            way = direction_name(query, database)
            found.setdefault(method, {}).setdefault(str(bits), {})[way] = {key: float(result[key]) for key in keep}
            by_bits.setdefault(bits, {})[method if len(ways) == 1 else f"{method} {way}"] = result
        if draw_figures:
            draw(sets[manifest.modalities[0]], params, source, manifest, figures)
    cosine = {}
    with open_features(features_path) as fs:  # the query and database rows only, each read once
        ranked = cosine_queries(fs.query, params.cosine_queries)
        for modality, view in fs.views.items():
            query, database = unit_features(view, ranked), unit_features(view, fs.database)
            cosine[direction_name(modality, modality)] = cosine_map(
                query, database, fs.labels[ranked], fs.labels[fs.database], tuple(params.map_at), normalised=True
            )
    metrics = shaped({**found, "cosine": cosine}, ways)
    write_json(metrics_path, metrics)
    write_curves(by_bits, curves)
    write_text(results_path, results_tables({**found, "cosine": cosine}, ways))
    return metrics


def shaped(metrics: dict, ways: list[tuple[str, str]]) -> dict:
    """The metrics as metrics.json holds them: a run of one direction without the direction's level."""
    if len(ways) > 1:
        return metrics
    (way,) = (direction_name(*w) for w in ways)
    return {method: value[way] if method == "cosine" else {bits: by_way[way] for bits, by_way in value.items()}
            for method, value in metrics.items()}  # fmt: skip


def draw(found: CodeSet, params: EvaluateParams, source, manifest: Manifest, figures: Path) -> None:
    """The top-10 retrieval figure of one code file (image data)."""
    queries = fixed_queries(found.query_labels, params.figure_queries)
    png = io.BytesIO()
    retrieval_figure(found, source.image, manifest.classes, queries).save(png, format="PNG")
    write_bytes(figures / f"{found.method}-{found.bits}.png", png.getvalue())


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


def results_tables(metrics: dict, ways: list[tuple[str, str]]) -> str:
    """Markdown: for each direction, one table per summary metric, methods as rows and code lengths as columns."""
    lines = ["# Retrieval results", "", "Written by the evaluate stage; see README for the protocol.", ""]
    for way in (direction_name(*w) for w in ways):
        if len(ways) > 1:
            lines += [f"## {way}", ""]
        one = {method: {bits: by_way[way] for bits, by_way in value.items()}
               for method, value in metrics.items() if method != "cosine"}  # fmt: skip
        lines += _tables(one, metrics["cosine"].get(way), "###" if len(ways) > 1 else "##")
    return "\n".join(lines)


def _tables(metrics: dict, cosine: dict | None, level: str) -> list[str]:
    """One direction's tables; ``cosine`` the real-valued reference row (None across modalities)."""
    methods = sorted(metrics)
    bits = sorted({int(b) for m in methods for b in metrics[m]})
    keys = [k for k in SUMMARY if any(k in metrics[m][str(b)] for m in methods for b in bits if str(b) in metrics[m])]
    lines = []
    for key in keys:
        lines += [f"{level} {key}", "", "| method | " + " | ".join(f"{b} bits" for b in bits) + " |",
                  "| --- |" + " ---: |" * len(bits)]  # fmt: skip
        for m in methods:
            cells = [f"{metrics[m][str(b)][key]:.4f}" if str(b) in metrics[m] else "" for b in bits]
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        if cosine is not None:
            value = f"{cosine[key]:.4f}"  # no code length: the same ranking in every column
            lines.append("| cosine (real-valued features) | " + " | ".join([value] * len(bits)) + " |")
        lines.append("")
    return lines + _filter_table(metrics, bits, keys, level)


def _filter_table(metrics: dict, bits: list[int], keys: list[str], level: str) -> list[str]:
    """The HAGCN papers' table: graph filter x code length, mAP at the first cut-off of the summary."""
    prefix = nrdh_method("")
    filters = sorted(m.removeprefix(prefix) for m in metrics if m.startswith(prefix))
    key = next((k for k in SUMMARY[1:] if k in keys), "map@all")
    if not filters:
        return []
    lines = [f"{level} Graph filters ({key})", "", "| filter | " + " | ".join(f"{b} bits" for b in bits) + " |",
             "| --- |" + " ---: |" * len(bits)]  # fmt: skip
    for f in filters:
        row = metrics[nrdh_method(f)]
        lines.append(f"| {f} | " + " | ".join(f"{row[str(b)][key]:.4f}" if str(b) in row else "" for b in bits) + " |")
    return [*lines, ""]
