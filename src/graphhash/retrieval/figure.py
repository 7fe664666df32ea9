"""``graphhash search --figure``: a contact sheet of search results, drawn by the evaluation's figure code.

One row per query: the query image (an image file, or the run's item for an id; grey for a features row
that is not an item of the run), then its results in rank order with their Hamming distances, framed green
or red by relevance when the query's class is known, grey when it is not.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from graphhash.data.images import decode
from graphhash.evaluation.figures import Tile, contact_sheet
from graphhash.files.atomic import atomic_path
from graphhash.retrieval.retriever import Result, Retriever


def _query_tile(retriever: Retriever, result: Result, query_files: dict[str, Path]) -> Tile:
    caption = "query" if result.class_name is None else f"query: {result.class_name}"
    if result.query in query_files:
        picture: Image.Image | None = decode(query_files[result.query].read_bytes(), result.query)
    else:
        try:
            picture = retriever.image(result.query)
        except KeyError:  # a features row that is not an item of the run
            picture = None
    return Tile(picture, caption, "query")


def write_contact_sheet(
    dest: str | Path, retriever: Retriever, results: list[Result], query_files: dict[str, Path]
) -> None:
    """Write the sheet of ``results`` as a PNG at ``dest``; ``query_files`` maps query names to image files."""
    rows = []
    for result in results:
        tiles = [_query_tile(retriever, result, query_files)]
        for hit in result.hits:
            kind = "unknown" if hit.relevant is None else "relevant" if hit.relevant else "irrelevant"
            tiles.append(Tile(retriever.image(hit.id), f"d={hit.distance}", kind))
        rows.append(tiles)
    info = retriever.info
    title = f"{info['method']}, {info['bits']} bits, {info['index']} index: each query, then its results"
    with atomic_path(dest) as tmp:
        contact_sheet(title, rows).save(tmp, format="PNG")
