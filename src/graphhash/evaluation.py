"""The ``evaluate`` stage: every code file against the same queries, database and metrics.

Writes ``metrics/metrics.json`` (numbers only: ``{method: {bits: {metric: value}}}``, plus ``cosine``, the
ranking of the database by the cosine similarity of the raw features: what binarisation costs),
``metrics/results.md`` (tables, methods x bits), the precision-recall curves under ``metrics/plots/``
(one CSV per code length and curve, one column per method) and, for image datasets, a top-10 retrieval
figure per code file under ``metrics/retrieval/``.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from graphhash.atomic import atomic_path, write_csv, write_json
from graphhash.codes import read_codes
from graphhash.errors import GraphhashError
from graphhash.features import read_features
from graphhash.figures import fixed_queries, retrieval_figure, write_png
from graphhash.manifest import Manifest
from graphhash.metrics import RECALL_GRID, average_precision, evaluate, relevance
from graphhash.sources import open_source

SUMMARY = ("map@all", "map@1000", "map@100")


def cosine_ranking(features_path: Path, map_at: list[int], block_size: int = 512) -> dict[str, float]:
    """mAP of ranking the database by cosine similarity of the raw features (ties by database index).

    The ranking needs a full sort of the database for every query (mAP@all); torch's stable sort does it on
    every core, where NumPy's runs on one.
    """
    fs = read_features(features_path)
    unit = torch.nn.functional.normalize(torch.from_numpy(np.ascontiguousarray(fs.features)).float(), dim=1)
    query, database = unit[fs.query], unit[fs.database]
    query_labels, database_labels = fs.labels[fs.query], fs.labels[fs.database]
    sums = dict.fromkeys(["map@all", *(f"map@{k}" for k in map_at)], 0.0)
    for start in range(0, len(query), block_size):
        block = slice(start, start + block_size)
        # descending and stable: equal similarities keep database order, so ties go to the lower index
        order = torch.sort(query[block] @ database.T, dim=1, descending=True, stable=True).indices.numpy()
        ranked = np.take_along_axis(relevance(query_labels[block], database_labels), order, 1)
        sums["map@all"] += average_precision(ranked, len(database)).sum()
        for k in map_at:
            sums[f"map@{k}"] += average_precision(ranked, k).sum()
    return {key: float(value / len(query)) for key, value in sums.items()}


def code_files(codes_dir: Path, methods: list[str], bits: list[int]) -> list[Path]:
    """``<codes_dir>/<method>-<bits>.h5`` for every method and code length the params ask for.

    Listed from the params rather than found by globbing, so that codes left behind by a filter or a code
    length since removed from params.yaml are not evaluated.
    """
    files = [codes_dir / f"{method}-{b}.h5" for method in sorted(methods) for b in sorted(bits)]
    for path in files:
        if not path.is_file():
            raise GraphhashError(f"evaluate: {path} is missing; run the stage that writes it (dvc repro)")
    return files


def evaluate_codes(
    files: list[Path], features_path: Path, manifest_path: Path, params: SimpleNamespace, out_dir: Path
) -> dict:
    """Evaluate the code files ``files``; write the metrics, tables, curves and figures."""
    manifest = Manifest.load(manifest_path)
    source = open_source(manifest.source, manifest.path)
    draw_figures = params.figure_queries > 0 and not source.holds_vectors
    (out_dir / "retrieval").mkdir(parents=True, exist_ok=True)  # declared output, empty without figures
    metrics: dict = {}
    curves: dict[int, dict[str, dict]] = {}
    for path in files:
        codes = read_codes(path)
        result = evaluate(codes.query, codes.database, codes.query_labels, codes.database_labels, codes.bits,
                          map_at=tuple(params.map_at), radius=params.radius)  # fmt: skip
        r = params.radius
        keep = ["map@all", *(f"map@{k}" for k in params.map_at), f"p@r{r}", f"r@r{r}", f"f1@r{r}"]
        metrics.setdefault(codes.method, {})[str(codes.bits)] = {key: float(result[key]) for key in keep}
        curves.setdefault(codes.bits, {})[codes.method] = result
        if draw_figures:
            queries = fixed_queries(codes.query_labels, params.figure_queries)
            figure = retrieval_figure(codes, source.image, manifest.classes, queries)
            write_png(out_dir / "retrieval" / f"{path.stem}.png", figure)
    metrics["cosine"] = cosine_ranking(features_path, list(params.map_at))
    write_json(out_dir / "metrics.json", metrics)
    _write_curves(curves, out_dir / "plots")
    with atomic_path(out_dir / "results.md") as tmp:
        tmp.write_text(results_table(metrics), encoding="utf-8")
    return metrics


def _write_curves(curves: dict[int, dict[str, dict]], plots: Path) -> None:
    for bits, by_method in curves.items():
        methods = sorted(by_method)
        rank = [{"recall": level, **{m: by_method[m]["pr_by_rank"]["precision"][i] for m in methods}}
                for i, level in enumerate(RECALL_GRID)]  # fmt: skip
        write_csv(plots / "pr_rank" / f"{bits}.csv", rank)
        for kind in ("precision", "recall"):
            rows = [
                {"radius": r, **{m: by_method[m]["pr_by_radius"][kind][r] for m in methods}} for r in range(bits + 1)
            ]
            write_csv(plots / f"{kind}_radius" / f"{bits}.csv", rows)


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
    filters = sorted(m.removeprefix("nrdh-") for m in metrics if m.startswith("nrdh-"))
    key = next((k for k in SUMMARY[1:] if k in metrics["cosine"]), "map@all")
    if not filters:
        return []
    lines = [f"## Graph filters ({key})", "", "| filter | " + " | ".join(f"{b} bits" for b in bits) + " |",
             "| --- |" + " ---: |" * len(bits)]  # fmt: skip
    for f in filters:
        row = metrics[f"nrdh-{f}"]
        lines.append(f"| {f} | " + " | ".join(f"{row[str(b)][key]:.4f}" if str(b) in row else "" for b in bits) + " |")
    return [*lines, ""]
