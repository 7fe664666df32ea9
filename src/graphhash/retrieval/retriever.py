"""Search a trained run: hash queries the way the run hashed its items, then look them up in its index.

``Retriever.from_run(".")`` opens a run's artefacts where the repository's ``dvc.yaml`` puts them
(``vars.paths``): the index folder of one NRDH method and code length (``index@<filter>-<bits>``), the hash
network that made those codes, the features file's attributes (which backbone, weights and image size), the
code file (for the query items' codes) and the manifest (where the images are). Artefacts are found by
what they record (method and code length), not by file name, as ``evaluate`` finds code files.

A query is an image (decoded, resized and embedded by the run's backbone, then hashed; with
``hash.input: graph`` its features are first propagated over its nearest training items, as the run did for
its own queries), a features vector, or the id of an item of the run (whose stored code is used). Results
follow the project's order: ascending Hamming distance, ties by ascending database index; with a ``flat``
index they are exactly the evaluator's ranking.

A paired run (several modalities) has a hash network and an index per modality: queries of one modality
(``query_modality``, the run's first by default) search the database items of any (``database_modality``, the
queries' own by default), e.g. texts for images. Queries of a modality the run never hashed (a text query to an
image-only run) are refused in one line. Labels are one class per item, or a set of labels (multi-label data,
where a hit is relevant when it shares one with the query).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from graphhash.data.images import MAX_PIXELS, decode
from graphhash.data.sources import Source, open_source
from graphhash.database.changes import Change, read_changes
from graphhash.database.run import Database, Report, read_checked_index, run_paths
from graphhash.errors import GraphhashError
from graphhash.files.codes import CODES, CodeSet, find_code_files, nrdh_method, pack, read_codes
from graphhash.files.index import INDEX_FILE, StoredIndex, find_indexes
from graphhash.files.manifest import Manifest
from graphhash.index import build_index
from graphhash.nrdh.encoder import ItemEncoder, find_hash_network
from graphhash.params import PARAMS_FILE, load_params
from graphhash.params.codes import CodesParams
from graphhash.params.extract import ExtractParams

log = logging.getLogger(__name__)


def _code_file(folder: Path, method: str, bits: int, modality: str) -> Path:
    found = find_code_files(folder).get((method, bits, modality))
    if found is None:
        raise GraphhashError(f"{folder}: no code file of {method} at {bits} bits for {modality} ({CODES.stage} "
                             "stage; dvc repro)")  # fmt: skip
    return found


def _stamp(folder: Path | None) -> tuple[int, int, int] | None:
    """What tells an index file's versions apart: its inode, modification time and size (a change renames a new
    file onto it)."""
    if folder is None:
        return None
    try:
        found = os.stat(folder / INDEX_FILE)
    except OSError:
        return None
    return found.st_ino, found.st_mtime_ns, found.st_size


def label_of(row: np.ndarray) -> int | list[int]:
    """An item's label as results show it: its class, or the indices of its labels (multi-label data)."""
    return int(row) if np.ndim(row) == 0 else [int(c) for c in np.flatnonzero(row)]


def _shares(a: int | list[int], b: int | list[int]) -> bool:
    """Relevance: the same class, or a shared label."""
    return bool(set(a) & set(b)) if isinstance(a, list) else a == b


@dataclass(frozen=True)
class Hit:
    """One database item in a query's results."""

    rank: int  # 1-based
    row: int  # the item's index in the database (the index's row)
    id: str
    distance: int  # Hamming distance to the query's code
    label: int | list[int]  # its class, or its labels (multi-label data)
    class_name: str
    relevant: bool | None  # same class as the query (or a shared label); None when the query's is unknown


@dataclass(frozen=True)
class Result:
    """A query and its results, nearest first."""

    query: str  # what was searched: a file name, an item id, a features row
    label: int | list[int] | None  # the query's class or labels, when known (an item of the run)
    class_name: str | None
    hits: list[Hit]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Retriever:
    """A run's index, hash network and backbone, ready to search; built by ``from_run``.

    The database is the index's: the pipeline's database items, then the items ``add`` added, less those ``remove``
    took out (``graphhash.database``). ``refresh`` reads the index again when its file changed (an add or a remove
    from another process, or ``dvc repro``).
    """

    def __init__(self, stored: StoredIndex, encoder: ItemEncoder, codes: CodeSet, source: Source | None,
                 database: Database | None = None, folder: Path | None = None):  # fmt: skip
        """``stored``: the database's index (read from ``folder``); ``encoder`` and ``codes``: the queries' modality's
        hash network and code file (the codes of the run's own items, searched by id); ``database``: the run's, for
        ``add`` and ``remove``."""
        self.encoder, self.codes, self.source, self.database, self.folder = encoder, codes, source, database, folder
        self.features_attrs = encoder.features_attrs
        self.classes: list[str] = json.loads(self.features_attrs.get("classes", "[]"))
        self.code_rows = {item_id: row for row, item_id in enumerate(codes.database_ids)}
        self.query_rows = {item_id: row for row, item_id in enumerate(codes.query_ids)}
        self._use(stored)

    def _use(self, stored: StoredIndex) -> None:
        self.stored = stored
        self.kind_index = build_index(stored.kind, stored.options)
        self.live = stored.live()
        self.rows = {stored.ids[slot]: int(slot) for slot in self.live}  # the slot of every item searched
        self.added = {stored.ids[slot] for slot in self.live if stored.serials[slot] >= 0}
        self._stamp = _stamp(self.folder)
        self._changes: dict[str, Change] | None = None  # the add of each addition, read when first asked

    @classmethod
    def from_run(
        cls,
        root: str | Path = ".",
        *,
        method: str | None = None,
        bits: int | None = None,
        query_modality: str | None = None,
        database_modality: str | None = None,
        device: str = "auto",
    ) -> Retriever:
        """Open the run in ``root``. ``method`` defaults to NRDH with params.yaml's first filter, ``bits`` to
        the longest code length indexed for it, ``query_modality`` to the run's first modality and
        ``database_modality`` to the queries' own.

        After ``dvc repro`` on the embedded digits, in the repository:

        >>> retriever = Retriever.from_run(".", bits=64)  # doctest: +SKIP
        >>> [result] = retriever.search_ids(["digits/0007"], k=3)  # doctest: +SKIP
        >>> [(hit.rank, hit.class_name, hit.relevant) for hit in result.hits]  # doctest: +SKIP
        [(1, '7', True), (2, '7', True), (3, '7', True)]
        """
        root = Path(root)
        paths = run_paths(root)
        manifest = Manifest.load(paths["manifest"])
        query_modality = query_modality or manifest.modalities[0]
        database_modality = database_modality or query_modality
        for key, modality in (("query", query_modality), ("database", database_modality)):
            if modality not in manifest.modalities:
                raise GraphhashError(f"--{key}-modality: {modality}: the run's items hold only "
                                     f"{', '.join(manifest.modalities)}, so it has no {modality} hash network or index "
                                     f"to search with {modality} queries or among {modality} items")  # fmt: skip
        indexes = find_indexes(paths["index"])
        if not indexes:
            raise GraphhashError(f"{paths['index']}: no index yet; run the pipeline first (dvc repro)")
        if method is None:
            (codes,) = load_params(CodesParams, path=root / PARAMS_FILE)
            method = nrdh_method(codes.filters[0])
        lengths = sorted(b for m, b, modality in indexes if (m, modality) == (method, database_modality))
        if bits is None and lengths:
            bits = lengths[-1]
        if (method, bits, database_modality) not in indexes:
            known = ", ".join(f"{m} at {b} bits ({modality})" for m, b, modality in sorted(indexes))
            wanted = f"{method} at {bits} bits" if bits else method
            raise GraphhashError(f"{paths['index']}: no index of {wanted} ({database_modality}) (indexed: {known})")
        folder = indexes[(method, bits, database_modality)]
        (extract,) = load_params(ExtractParams, path=root / PARAMS_FILE)
        model = find_hash_network(paths["models"], method, bits, query_modality)
        encoder = ItemEncoder.load(model, paths["features"], weights=extract.weights, weights_path=extract.weights_path,
                                   device=device)  # fmt: skip
        stored = read_checked_index(folder, paths["models"])
        if encoder.bits != stored.bits:
            raise GraphhashError(f"{paths['models']}: the hash network makes {encoder.bits}-bit codes, the index "
                                 f"holds {stored.bits}-bit codes; rerun the pipeline (dvc repro)")  # fmt: skip
        found = read_codes(_code_file(paths["codes"], method, bits, query_modality))
        return cls(stored, encoder, found, open_source(manifest.source, manifest.path),
                   Database(root, device=device), folder)  # fmt: skip

    # -- the database ------------------------------------------------------------------------------------

    def refresh(self) -> bool:
        """Read the index again if its file changed since it was read; True when it did."""
        if self.folder is None or _stamp(self.folder) == self._stamp:
            return False
        self._use(read_checked_index(self.folder, self.database.paths["models"] if self.database else None))
        return True

    def add(self, paths: list[str | Path], *, allow_duplicates: bool = False, wait: bool = False) -> Report:
        """Add image files (and the images under folders) to the run's database (``Database.add``), then search it."""
        report = self._writable().add(paths, allow_duplicates=allow_duplicates, wait=wait)
        self.refresh()
        return report

    def add_upload(self, name: str, data: bytes, *, wait: bool = True) -> Report:
        """Add an uploaded image, kept in the run's uploads folder (``Database.add_upload``)."""
        database = self._writable()
        report = database.add_upload(name, data, database.paths["uploads"], wait=wait)
        self.refresh()
        return report

    def remove(self, item_ids: list[str], *, wait: bool = False) -> Report:
        """Take items out of the run's database by id (``Database.remove``)."""
        report = self._writable().remove(item_ids, wait=wait)
        self.refresh()
        return report

    def _writable(self) -> Database:
        if self.database is None:
            raise GraphhashError("this retriever was not opened from a run (Retriever.from_run): it cannot change one")
        return self.database

    def items(self, offset: int, limit: int) -> list[tuple[int, str, int | list[int]]]:
        """A page of the database items searched, in database order: (row, id, label)."""
        slots = self.live[offset : offset + limit]
        return [(int(slot), self.stored.ids[slot], label_of(self.stored.labels[slot])) for slot in slots]

    @property
    def info(self) -> dict[str, Any]:
        attrs = self.features_attrs
        return {"method": self.stored.method, "bits": self.stored.bits, "query_modality": self.encoder.modality,
                "database_modality": self.stored.modality, "index": self.stored.kind,
                "index_options": self.stored.options, "count": self.stored.count,
                "added": len(self.added), "writable": self.database is not None,
                "backbone": attrs.get("backbone"), "image_size": attrs.get("image_size"), "classes": self.classes,
                "images": self.source is not None and not self.source.holds_vectors}  # fmt: skip

    def class_name(self, label: int | list[int]) -> str:
        if isinstance(label, list):
            return ", ".join(self.class_name(one) for one in label)
        return self.classes[label] if 0 <= label < len(self.classes) else str(label)

    def image(self, item_id: str) -> Image.Image:
        """An item of the run as an RGB image, read from its data source, or an added item's from its file (nothing
        is extracted to disk)."""
        if item_id in self.added:
            change = self._added_change(item_id)
            if change.row >= 0:
                raise GraphhashError(f"id {item_id!r}: an added item of {change.modality} features, not an image")
            root = self.database.root if self.database else Path(".")
            return decode((root / change.path).read_bytes(), item_id)
        if item_id not in self.rows and item_id not in self.query_rows:
            raise KeyError(item_id)
        if self.source is None or self.source.holds_vectors:
            raise GraphhashError(f"{self.features_attrs.get('source')}: the run's items are vectors, not images")
        return self.source.image(item_id)

    def _added_change(self, item_id: str) -> Change:
        """The change that added ``item_id`` (the last add of that id), from the changes file read once per version of
        the index."""
        if self._changes is None:
            changes = read_changes(self.database.paths["changes"]) if self.database else []
            self._changes = {c.id: c for c in changes if c.op == "add"}
        return self._changes[item_id]

    # -- searching -------------------------------------------------------------------------------------

    def search_codes(self, codes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Database rows (q, k) and Hamming distances (q, k) of the first ``k`` items for packed codes (q, B)."""
        return self.kind_index.search(self.stored.index, self.stored.codes, codes, k, self.stored.removed)

    def search_images(
        self, images: list[tuple[str, bytes]], k: int, max_pixels: int | None = MAX_PIXELS
    ) -> list[Result]:
        """Search with encoded image files: (name, bytes) pairs; a file that is not an image, or of more than
        ``max_pixels`` pixels, is one line."""
        decoded = [np.asarray(decode(data, name, max_pixels), dtype=np.uint8) for name, data in images]
        codes = pack(self.encoder.encode_images(decoded))
        return self._results([name for name, _ in images], codes, [None] * len(images), k)

    def search_ids(self, item_ids: list[str], k: int) -> list[Result]:
        """Search with items of the run (query or database items, or additions), by their stored codes."""
        codes, labels = [], []
        for item_id in item_ids:
            if item_id in self.added:  # an addition's code: the index's own (its modality's)
                if self.stored.modality != self.encoder.modality:
                    raise GraphhashError(f"id {item_id!r}: an added {self.stored.modality} item, with no "
                                         f"{self.encoder.modality} code to search with")  # fmt: skip
                codes.append(self.stored.codes[self.rows[item_id]])
                labels.append(None)
            elif item_id in self.code_rows:  # its code in the queries' modality (the index's own, within one modality)
                row = self.code_rows[item_id]
                codes.append(self.codes.database[row])
                labels.append(label_of(self.codes.database_labels[row]))
            elif item_id in self.query_rows:
                row = self.query_rows[item_id]
                codes.append(self.codes.query[row])
                labels.append(label_of(self.codes.query_labels[row]))
            else:
                raise GraphhashError(f"id {item_id!r}: not a query or database item of this run")
        return self._results(list(item_ids), np.array(codes, dtype=np.uint8).reshape(len(codes), -1), labels, k)

    def search_features(self, path: str | Path, k: int) -> list[Result]:
        """Search with every row of a features file (as ``graphhash encode`` hashes them); rows of the run's
        classes keep their labels, for relevance marks."""
        codes, fs = self.encoder.encode_file(path)
        same_classes = json.loads(fs.attrs.get("classes", "[]")) == self.classes
        labels = [label_of(label) if same_classes else None for label in fs.labels]
        return self._results(fs.ids, pack(codes), labels, k)

    def _results(self, names: list[str], codes: np.ndarray, labels: list, k: int) -> list[Result]:
        rows, distances = self.search_codes(codes, k)
        if not self.classes:  # a run without labels: no query's relevance is known
            labels = [None] * len(names)
        results = []
        for name, label, found, dist in zip(names, labels, rows, distances, strict=True):
            hits = []
            for rank, (row, d) in enumerate(zip(found, dist, strict=True), start=1):
                if row < 0:
                    continue
                own = label_of(self.stored.labels[row])
                known = self.stored.serials[row] < 0  # an added item's label is unknown
                hits.append(Hit(rank=rank, row=int(row), id=self.stored.ids[row], distance=int(d), label=own,
                                class_name=self.class_name(own) if known else "",
                                relevant=None if label is None or not known else _shares(label, own)))  # fmt: skip
            results.append(Result(query=name, label=label, class_name=None if label is None else self.class_name(label),
                                  hits=hits))  # fmt: skip
        return results
