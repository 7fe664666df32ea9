"""The ``evaluate`` stage: every code file the params name, against the same queries, database and metrics.

Code files are found in the codes folder by their ``method``, ``bits`` and ``modality`` attributes; those the
params do not name (left behind by a filter or a code length since removed) are ignored, and a missing one is an
error. Every method has one code file per modality of the features file, and every **direction** is scored: the
query items' codes of one modality rank the database items' codes of another (``image->text``, ``text->image``)
or of the same (``image->image``, ``text->text``, for reference), with the same ranking and relevance rules.

Two relevances, for every code file and direction (``graphhash.evaluation.metrics``):

- by **labels** (same class, or a shared label): mAP@all, mAP@K, and precision, recall and F1 within the Hamming
  radius; not written for a run without labels or with one class (every item would be relevant);
- by **true neighbours**, the label-free protocol, for every run: a query's relevant items are its
  ``evaluate.neighbours`` (R) nearest database items by cosine similarity of the raw features (for paired data,
  the mean of the modalities' cosines: the pair's nearest pairs), ties by database index; ``nmap@K`` and
  ``recall@K`` (the fraction of the R among the first K) for K in ``evaluate.map_at``, over the queries the cosine
  reference ranks (``evaluate.cosine_queries``).

Writes a compact summary for people, ``dvc metrics show`` and ``dvc exp show`` (a few short columns): NRDH's
headline at every code length, the first filter's (the one ``graphhash search`` uses), ``map@K`` and ``nmap@K`` for
the first K of ``evaluate.map_at`` (``{metric: {bits: value}}``; without labels ``nmap@K`` alone; for several
modalities the directions across modalities, ``{direction: {metric: {bits: value}}}``, ``map@K`` alone when
labelled). And the metrics (numbers only: ``{method: {bits: {metric: value}}}`` for a run of one modality, which has
one direction; ``{method: {bits: {direction: {metric: value}}}}`` for several), plus ``cosine``, the ranking of the
database by the cosine similarity of the raw features scored by labels (what binarisation costs; within one modality
only, as features of two modalities are not comparable; by true neighbours it scores 1 by definition), the results
tables (methods x bits, one set per direction), the precision-recall curves (one CSV per curve and code length, a
row per method, direction and point; by labels, or by true neighbours without them) and, for image datasets, a
top-10 retrieval figure per code file (hits framed by labels, or by true neighbours without them).
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np

from graphhash.data.sources import SOURCES, open_source
from graphhash.errors import GraphhashError
from graphhash.evaluation.figures import fixed_queries, retrieval_figure
from graphhash.evaluation.metrics import RECALL_GRID, cosine_map, cosine_neighbours, evaluate
from graphhash.files.atomic import write_bytes, write_csv, write_json, write_text
from graphhash.files.codes import CodeSet, find_code_files, nrdh_method, read_codes
from graphhash.files.features import FeatureSet, open_features
from graphhash.files.manifest import Manifest, no_label_metrics
from graphhash.graphs.knn import joint_features, unit_features
from graphhash.params.baselines import BaselinesParams
from graphhash.params.codes import CodesParams
from graphhash.params.evaluate import EvaluateParams

log = logging.getLogger(__name__)


def summary_keys(map_at: list[int]) -> list[str]:
    """The metrics the results tables show, in order: by labels, then by true neighbours."""
    return ["map@all", *(f"map@{k}" for k in map_at), *(f"nmap@{k}" for k in map_at),
            *(f"recall@{k}" for k in map_at)]  # fmt: skip


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
    summary: Path | None = None,
) -> dict:
    """Evaluate the code files the params name; write the metrics, tables, curves and figures."""
    manifest = Manifest.load(manifest_path)
    unlabelled = no_label_metrics(manifest.classes)
    if unlabelled:
        log.warning("evaluate: %s; the label-free metrics only (nmap@K, recall@K)", unlabelled)
    ways = directions(manifest.modalities)
    methods = [*baselines.methods, *(nrdh_method(name) for name in codes.filters)]
    files = code_files(codes_folder, methods, codes.bits, manifest.modalities)
    with open_features(features_path) as fs:  # the query and database rows only, each read once
        ranked = cosine_queries(fs.query, params.cosine_queries)
        joint = unit_pair(joint_features(fs, {}), fs, ranked)  # the true neighbours' similarity
        truth = cosine_neighbours(*joint, params.neighbours)
        picked = np.flatnonzero(ranked[fs.query])  # the ranked queries' places among the queries
        cosine = {} if unlabelled else cosine_reference(fs, ranked, params.map_at, joint)
        del joint
    draw_figures = params.figure_queries > 0 and not SOURCES[manifest.source].holds_vectors
    source = open_source(manifest.source, manifest.path) if draw_figures else None
    figures.mkdir(parents=True, exist_ok=True)  # declared output, empty without figures
    found: dict = {}  # {method: {bits: {direction: {metric: value}}}}
    by_bits: dict[int, dict[str, dict]] = {}  # {bits: {curve label: result}}
    r, map_at = params.radius, tuple(params.map_at)
    keep = ["map@all", *(f"map@{k}" for k in map_at), f"p@r{r}", f"r@r{r}", f"f1@r{r}"]
    for (method, bits), paths in files.items():
        sets = {modality: read_codes(path) for modality, path in paths.items()}
        for query, database in ways:
            q, d = sets[query], sets[database]
            free = evaluate(q.query[picked], d.database, None, None, bits, map_at=map_at, radius=r,
                            precision_at=map_at, neighbours=truth)  # fmt: skip
            scores = {**{f"nmap@{k}": free[f"map@{k}"] for k in map_at}, **{f"recall@{k}": free[f"recall@{k}"]
                                                                            for k in map_at}}  # fmt: skip
            curves_of = free
            if not unlabelled:
                curves_of = evaluate(q.query, d.database, q.query_labels, d.database_labels, bits, map_at=map_at,
                                     radius=r)  # fmt: skip
                scores = {**{key: curves_of[key] for key in keep}, **scores}
            way = direction_name(query, database)
            found.setdefault(method, {}).setdefault(str(bits), {})[way] = {k: float(v) for k, v in scores.items()}
            by_bits.setdefault(bits, {})[method if len(ways) == 1 else f"{method} {way}"] = curves_of
        if draw_figures:
            truths = None if not unlabelled else dict(zip(picked.tolist(), truth, strict=True))
            draw(sets[manifest.modalities[0]], params, source, manifest, figures, truths)
    found = {**found, "cosine": cosine} if cosine else found  # no cosine row without labels
    metrics = shaped(found, ways)
    write_json(metrics_path, metrics)
    if summary is not None:
        write_summary(found, ways, codes.filters, params.map_at[0], not unlabelled, summary)
    write_curves(by_bits, curves)
    write_text(results_path, results_tables(found, ways, summary_keys(params.map_at)))
    return metrics


def unit_pair(features: np.ndarray, fs: FeatureSet, ranked: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The unit rows of the ranked queries and of the database (``unit_features``). Given the joint features of a
    file's modalities (``joint_features`` with equal weights: for one modality, its own; for several, the mean of
    their cosines), their cosines rank the true neighbours (``cosine_neighbours``)."""
    return unit_features(features, ranked), unit_features(features, fs.database)


def cosine_reference(fs: FeatureSet, ranked: np.ndarray, map_at: list[int],
                     joint: tuple[np.ndarray, np.ndarray]) -> dict[str, dict[str, float]]:  # fmt: skip
    """The label metrics of ranking the database by each modality's raw features, for the ranked queries;
    ``joint``: the unit rows of the true neighbours, which are a file of one modality's own (read once)."""
    cosine = {}
    for modality, view in fs.views.items():
        query, database = joint if len(fs.views) == 1 else unit_pair(view, fs, ranked)
        cosine[direction_name(modality, modality)] = cosine_map(
            query, database, fs.labels[ranked], fs.labels[fs.database], tuple(map_at), normalised=True
        )
    return cosine


def shaped(metrics: dict, ways: list[tuple[str, str]]) -> dict:
    """The metrics as metrics.json holds them: a run of one direction without the direction's level."""
    if len(ways) > 1:
        return metrics
    (way,) = (direction_name(*w) for w in ways)
    return {method: value[way] if method == "cosine" else {bits: by_way[way] for bits, by_way in value.items()}
            for method, value in metrics.items()}  # fmt: skip


def write_summary(metrics: dict, ways: list[tuple[str, str]], filters: list[str], k: int, labelled: bool,
                  path: Path) -> None:  # fmt: skip
    """The compact summary (see the module's text) of the first filter's NRDH codes."""
    by_bits = metrics[nrdh_method(filters[0])]
    across = [direction_name(*w) for w in ways if w[0] != w[1]] or [direction_name(*ways[0])]
    keys = [f"nmap@{k}"] if not labelled else [f"map@{k}", f"nmap@{k}"] if len(across) == 1 else [f"map@{k}"]
    summary = {way: {key: {bits: by_way[way][key] for bits, by_way in by_bits.items()} for key in keys}
               for way in across}  # fmt: skip
    write_json(path, summary[across[0]] if len(ways) == 1 else summary)


def draw(found: CodeSet, params: EvaluateParams, source, manifest: Manifest, figures: Path,
         truths: dict[int, np.ndarray] | None) -> None:  # fmt: skip
    """The top-10 retrieval figure of one code file (image data); ``truths``: the ranked queries' true neighbours,
    which frame the hits of a run without labels."""
    if truths is None:
        queries = fixed_queries(found.query_labels, params.figure_queries)
    else:
        queries = list(truths)[: params.figure_queries]
    png = io.BytesIO()
    retrieval_figure(found, source.image, manifest.classes, queries, neighbours=truths).save(png, format="PNG")
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


def results_tables(metrics: dict, ways: list[tuple[str, str]], summary: list[str]) -> str:
    """Markdown: for each direction, one table per ``summary`` metric the run has, methods as rows and code lengths
    as columns."""
    lines = ["# Retrieval results", "", "Written by the evaluate stage; see README for the protocol.", ""]
    for way in (direction_name(*w) for w in ways):
        if len(ways) > 1:
            lines += [f"## {way}", ""]
        one = {method: {bits: by_way[way] for bits, by_way in value.items()}
               for method, value in metrics.items() if method != "cosine"}  # fmt: skip
        lines += _tables(one, metrics.get("cosine", {}).get(way), "###" if len(ways) > 1 else "##", summary)
    return "\n".join(lines)


def _tables(metrics: dict, cosine: dict | None, level: str, summary: list[str]) -> list[str]:
    """One direction's tables; ``cosine`` the real-valued reference row (None across modalities, or without
    labels)."""
    methods = sorted(metrics)
    bits = sorted({int(b) for m in methods for b in metrics[m]})
    keys = [k for k in summary if any(k in metrics[m][str(b)] for m in methods for b in bits if str(b) in metrics[m])]
    lines = []
    for key in keys:
        lines += [f"{level} {key}", "", "| method | " + " | ".join(f"{b} bits" for b in bits) + " |",
                  "| --- |" + " ---: |" * len(bits)]  # fmt: skip
        for m in methods:
            cells = [f"{metrics[m][str(b)][key]:.4f}" if str(b) in metrics[m] else "" for b in bits]
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        if cosine is not None and key in cosine:
            value = f"{cosine[key]:.4f}"  # no code length: the same ranking in every column
            lines.append("| cosine (real-valued features) | " + " | ".join([value] * len(bits)) + " |")
        lines.append("")
    return lines + _filter_table(metrics, bits, keys, level)


def _filter_table(metrics: dict, bits: list[int], keys: list[str], level: str) -> list[str]:
    """The HAGCN papers' table: graph filter x code length, mAP at the first cut-off of the summary."""
    prefix = nrdh_method("")
    filters = sorted(m.removeprefix(prefix) for m in metrics if m.startswith(prefix))
    key = next((k for k in keys if k != "map@all"), keys[0] if keys else "map@all")
    if not filters:
        return []
    lines = [f"{level} Graph filters ({key})", "", "| filter | " + " | ".join(f"{b} bits" for b in bits) + " |",
             "| --- |" + " ---: |" * len(bits)]  # fmt: skip
    for f in filters:
        row = metrics[nrdh_method(f)]
        lines.append(f"| {f} | " + " | ".join(f"{row[str(b)][key]:.4f}" if str(b) in row else "" for b in bits) + " |")
    return [*lines, ""]
