"""Top-k retrieval figure: a few fixed queries and the database items nearest to them in Hamming distance.

One row per query: the query (grey frame, its class below), then its k nearest database items in the
evaluator's order (ascending Hamming distance, ties by database index), each framed green when relevant
(same class, or a shared label) and red when not, with its distance below.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from graphhash.evaluation.metrics import hamming, relevance
from graphhash.files.codes import CodeSet

THUMB = 64  # pixels per image side
FRAME = 3
GAP = 4
CAPTION = 14
FRAME_COLOURS = {"query": (90, 90, 90), "relevant": (30, 150, 60), "irrelevant": (220, 20, 20)}


def fixed_queries(labels: np.ndarray, count: int) -> list[int]:
    """The first query of each class, in class order, up to ``count``: the same queries in every run."""
    if labels.ndim > 1:  # multi-label: the first ``count`` queries
        return list(range(min(count, len(labels))))
    _, first = np.unique(labels, return_index=True)
    return [int(i) for i in first[:count]]


def nearest(codes: CodeSet, query_index: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Database indices of the k nearest items to one query, and their Hamming distances."""
    distances = hamming(codes.query[query_index : query_index + 1], codes.database)[0]
    order = np.argsort(distances, kind="stable")[:k]  # stable: ties stay in database order
    return order, distances[order]


def retrieval_figure(
    codes: CodeSet, image: Callable[[str], Image.Image], class_names: list[str], queries: list[int], k: int = 10
) -> Image.Image:
    """The figure for ``queries`` (indices into the code file's queries); ``image`` reads an item by id."""
    font = ImageFont.load_default(size=11)
    cell = THUMB + 2 * FRAME
    title = f"{codes.method}, {codes.bits} bits: query, then its {k} nearest codes (red: not relevant)"
    width = max((k + 1) * (cell + GAP) + 2 * GAP, int(font.getlength(title)) + 2 * GAP)  # extra gap after query
    figure = Image.new("RGB", (width, CAPTION + len(queries) * (cell + CAPTION + GAP) + GAP), "white")
    draw = ImageDraw.Draw(figure)
    draw.text((GAP, 1), title, fill="black", font=font)
    for row, qi in enumerate(queries):
        top = CAPTION + row * (cell + CAPTION + GAP) + GAP
        order, distances = nearest(codes, qi, k)
        relevant = relevance(codes.query_labels[qi : qi + 1], codes.database_labels[order])[0]
        query_label = codes.query_labels[qi]
        caption = f"query: {class_names[int(query_label)]}" if np.ndim(query_label) == 0 else "query"
        cells = [(codes.query_ids[qi], "query", caption, GAP)]
        cells += [
            (codes.database_ids[j], "relevant" if rel else "irrelevant", f"d={d}", GAP + (i + 1) * (cell + GAP) + GAP)
            for i, (j, d, rel) in enumerate(zip(order, distances, relevant, strict=True))
        ]
        for item_id, kind, text, left in cells:
            draw.rectangle((left, top, left + cell - 1, top + cell - 1), fill=FRAME_COLOURS[kind])
            figure.paste(_thumbnail(image(item_id)), (left + FRAME, top + FRAME))
            draw.text((left, top + cell + 1), text, fill="black", font=font)
    return figure


def _thumbnail(img: Image.Image) -> Image.Image:
    """A THUMB x THUMB RGB square; small images are enlarged with visible pixels rather than blurred."""
    small = max(img.size) < THUMB
    return img.convert("RGB").resize((THUMB, THUMB), Image.Resampling.NEAREST if small else Image.Resampling.LANCZOS)
