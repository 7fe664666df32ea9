"""The top-10 retrieval figure: which queries, which neighbours in which order, and how they are framed."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from graphhash.evaluation.figures import (
    CAPTION,
    FRAME,
    FRAME_COLOURS,
    GAP,
    THUMB,
    fixed_queries,
    nearest,
    retrieval_figure,
)
from graphhash.files.codes import CodeSet, pack


def colour_of(item_id: str) -> tuple[int, int, int]:
    """A distinct solid colour per item, so the figure's pixels say which item sits in which cell."""
    n = int(item_id[1:]) + 1
    return (37 * n % 256, 91 * n % 256, 53 * n % 256)


def solid_image(item_id: str) -> Image.Image:
    return Image.new("RGB", (20, 20), colour_of(item_id))


def code_set(query_bits, database_bits, query_labels, database_labels) -> CodeSet:
    q, n = len(query_bits), len(database_bits)
    return CodeSet("demo", query_bits.shape[1], "image", pack(query_bits), pack(database_bits),
                   [f"q{i}" for i in range(q)], [f"d{i}" for i in range(n)],
                   np.asarray(query_labels), np.asarray(database_labels))  # fmt: skip


def test_fixed_queries_are_the_first_of_each_class_in_class_order():
    labels = np.array([2, 0, 1, 0, 2, 1, 3])
    assert fixed_queries(labels, 2) == [1, 2]
    assert fixed_queries(labels, 10) == [1, 2, 0, 6]
    assert fixed_queries(np.ones((4, 3), dtype=np.int64), 2) == [0, 1]  # multi-label: the first ones


@pytest.mark.parametrize("seed", range(4))
def test_nearest_follows_distance_then_database_index(seed):
    rng = np.random.default_rng(seed)
    bits = 6
    qb, db = rng.random((3, bits)) < 0.5, rng.random((40, bits)) < 0.5  # 40 items, 7 distances: many ties
    codes = code_set(qb, db, [0, 0, 0], np.zeros(40, dtype=np.int64))
    for qi in range(3):
        distance = [int((qb[qi] != row).sum()) for row in db]
        expected = sorted(range(40), key=lambda j: (distance[j], j))[:10]
        order, got_distance = nearest(codes, qi, 10)
        assert order.tolist() == expected
        assert got_distance.tolist() == [distance[j] for j in expected]


def cell_origin(row: int, column: int) -> tuple[int, int]:
    """Top-left corner of a cell's frame: column 0 is the query, 1..k its neighbours."""
    cell = THUMB + 2 * FRAME
    left = GAP + column * (cell + GAP) + (GAP if column else 0)
    return left, CAPTION + row * (cell + CAPTION + GAP) + GAP


def test_figure_shows_each_query_then_its_neighbours_framed_by_relevance():
    rng = np.random.default_rng(5)
    bits, n = 8, 30
    db = rng.random((n, bits)) < 0.5
    qb = db[[4, 17]] ^ (rng.random((2, bits)) < 0.1)  # queries near database items 4 and 17
    database_labels = rng.integers(0, 3, n)
    query_labels = np.array([1, 2])
    codes = code_set(qb, db, query_labels, database_labels)
    figure = retrieval_figure(codes, solid_image, ["a", "b", "c"], [1, 0], k=10)
    pixels = np.asarray(figure)
    for row, qi in enumerate([1, 0]):
        distance = [int((qb[qi] != code).sum()) for code in db]
        expected = sorted(range(n), key=lambda j: (distance[j], j))[:10]
        left, top = cell_origin(row, 0)
        assert tuple(pixels[top + FRAME + THUMB // 2, left + FRAME + THUMB // 2]) == colour_of(f"q{qi}")
        assert tuple(pixels[top, left]) == FRAME_COLOURS["query"]
        for column, j in enumerate(expected, start=1):
            left, top = cell_origin(row, column)
            assert tuple(pixels[top + FRAME + THUMB // 2, left + FRAME + THUMB // 2]) == colour_of(f"d{j}")
            want = "relevant" if database_labels[j] == query_labels[qi] else "irrelevant"
            assert tuple(pixels[top + 1, left + 1]) == FRAME_COLOURS[want], (row, column)
    right_edge = cell_origin(0, 10)[0] + THUMB + 2 * FRAME
    assert figure.width >= right_edge
    assert figure.height >= cell_origin(1, 0)[1] + THUMB + 2 * FRAME + CAPTION


def test_multi_label_relevance_is_a_shared_label():
    db = np.zeros((3, 8), dtype=bool)
    db[1, 0] = db[2, :2] = True  # distances 0, 1, 2 from an all-zero query
    labels = np.array([[1, 0, 0], [0, 1, 1], [0, 0, 1]])
    codes = code_set(np.zeros((1, 8), dtype=bool), db, np.array([[0, 0, 1]]), labels)
    pixels = np.asarray(retrieval_figure(codes, solid_image, [], [0], k=3))
    kinds = []
    for column in (1, 2, 3):
        left, top = cell_origin(0, column)
        kinds.append(next(k for k, c in FRAME_COLOURS.items() if c == tuple(pixels[top, left])))
    assert kinds == ["irrelevant", "relevant", "relevant"]


def test_figure_png_bytes_are_reproducible():
    """The same codes give the same PNG bytes (as the evaluate stage saves them), so DVC sees no change."""
    rng = np.random.default_rng(6)
    codes = code_set(rng.random((4, 16)) < 0.5, rng.random((25, 16)) < 0.5, [0, 1, 0, 1], rng.integers(0, 2, 25))
    pngs = []
    for _ in range(2):
        buffer = io.BytesIO()
        retrieval_figure(codes, solid_image, ["x", "y"], [0, 1]).save(buffer, format="PNG")
        pngs.append(buffer.getvalue())
    assert pngs[0] == pngs[1]
    assert Image.open(io.BytesIO(pngs[0])).format == "PNG"
