"""Top-k retrieval figure: a few fixed queries and the database items nearest to them in Hamming distance.

One row per query: the query (grey frame, its class below), then its k nearest database items in the
evaluator's order (ascending Hamming distance, ties by database index), each framed green when relevant
(same class, or a shared label; without labels, one of the query's true neighbours by features) and red when
not, with its distance below.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from graphhash.evaluation.metrics import relevance
from graphhash.files.codes import CodeSet
from graphhash.hamming import top_k

THUMB = 64  # pixels per image side
FRAME = 3
GAP = 4
CAPTION = 14
FRAME_COLOURS = {
    "query": (90, 90, 90),
    "relevant": (30, 150, 60),
    "irrelevant": (220, 20, 20),
    "unknown": (170, 170, 170),
}


def fixed_queries(labels: np.ndarray, count: int) -> list[int]:
    """The first query of each class, in class order, up to ``count``: the same queries in every run."""
    if labels.ndim > 1:  # multi-label: the first ``count`` queries
        return list(range(min(count, len(labels))))
    _, first = np.unique(labels, return_index=True)
    return [int(i) for i in first[:count]]


def nearest(codes: CodeSet, query_index: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Database indices of the k nearest items to one query, and their Hamming distances (the evaluator's
    ranking: ascending distance, ties by database index)."""
    ids, distances = top_k(codes.query[query_index : query_index + 1], codes.database, k)
    return ids[0], distances[0]


@dataclass(frozen=True)
class Tile:
    """One image of a contact sheet: the picture (None: a grey square), its caption and its frame's kind."""

    image: Image.Image | None
    caption: str
    kind: str  # a key of FRAME_COLOURS


def contact_sheet(title: str, rows: list[list[Tile]]) -> Image.Image:
    """Rows of framed thumbnails under ``title``: each row a query's tile, a gap, then its results' tiles."""
    font = ImageFont.load_default(size=11)
    cell = THUMB + 2 * FRAME
    tiles = max((len(row) for row in rows), default=1)
    width = max(tiles * (cell + GAP) + 2 * GAP, int(font.getlength(title)) + 2 * GAP)  # extra gap after query
    figure = Image.new("RGB", (width, CAPTION + len(rows) * (cell + CAPTION + GAP) + GAP), "white")
    draw = ImageDraw.Draw(figure)
    draw.text((GAP, 1), title, fill="black", font=font)
    for r, row in enumerate(rows):
        top = CAPTION + r * (cell + CAPTION + GAP) + GAP
        for i, tile in enumerate(row):
            left = GAP + i * (cell + GAP) + (GAP if i else 0)
            draw.rectangle((left, top, left + cell - 1, top + cell - 1), fill=FRAME_COLOURS[tile.kind])
            picture = thumbnail(tile.image, THUMB) if tile.image is not None else Image.new("RGB", (THUMB,) * 2, "#ddd")
            figure.paste(picture, (left + FRAME, top + FRAME))
            draw.text((left, top + cell + 1), tile.caption, fill="black", font=font)
    return figure


def retrieval_figure(
    codes: CodeSet,
    image: Callable[[str], Image.Image],
    class_names: list[str],
    queries: list[int],
    k: int = 10,
    *,
    neighbours: dict[int, np.ndarray] | None = None,
) -> Image.Image:
    """The figure for ``queries`` (indices into the code file's queries); ``image`` reads an item by id;
    ``neighbours``: each query's true neighbours (database indices), which decide relevance instead of labels."""
    rows = []
    for qi in queries:
        order, distances = nearest(codes, qi, k)
        if neighbours is None:
            relevant = relevance(codes.query_labels[qi : qi + 1], codes.database_labels[order])[0]
        else:
            relevant = np.isin(order, neighbours[qi])
        query_label = codes.query_labels[qi]
        caption = f"query: {class_names[int(query_label)]}" if np.ndim(query_label) == 0 else "query"
        rows.append([Tile(image(codes.query_ids[qi]), caption, "query")] + [
            Tile(image(codes.database_ids[j]), f"d={d}", "relevant" if rel else "irrelevant")
            for j, d, rel in zip(order, distances, relevant, strict=True)])  # fmt: skip
    irrelevant = "not relevant" if neighbours is None else "not among its nearest by features"
    title = f"{codes.method}, {codes.bits} bits: query, then its {k} nearest codes (red: {irrelevant})"
    return contact_sheet(title, rows)


def thumbnail(img: Image.Image, size: int) -> Image.Image:
    """A size x size RGB square; small images are enlarged with visible pixels rather than blurred."""
    small = max(img.size) < size
    return img.convert("RGB").resize((size, size), Image.Resampling.NEAREST if small else Image.Resampling.LANCZOS)
