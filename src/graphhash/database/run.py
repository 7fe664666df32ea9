"""A run's searchable database: the pipeline's database items, then the items ``graphhash add`` added, in the order
they were added, less those ``graphhash remove`` took out; and the one way its index files follow its changes.

``Database(root)`` opens a run built by ``dvc repro``. ``add`` embeds new image files with the run's backbone (as
``extract`` embedded the run's items), hashes them with every NRDH hash network that has an index (as the hash
stage hashed the run's items) and adds their codes to those indexes; ``remove`` takes items out. Neither touches
a network. Each change is recorded in the changes file (``graphhash.database.changes``), which the ``additions``
and ``index`` stages declare as an input: ``dvc repro`` rebuilds from it what the networks make, so an index after
a retraining holds the same items, hashed by the new networks.

**Order of writes.** Under the changes file's lock (one change at a time): the new items are read, checked and
embedded first (nothing is written if one fails); then their batch file; then the changes file, by a rename (the
change is made); then each index file, by a rename. A reader opens an index file before or after a change, never
between; a change killed after the changes file was written is completed by the next ``add`` or ``remove``, which
first brings every index up to the changes file (``sync``). Meanwhile each index is one consistent state, which a
search uses as it is.
"""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from graphhash.backbones import BACKBONES
from graphhash.data.images import MAX_PIXELS, decode, load_npy
from graphhash.data.sources import open_source
from graphhash.database.additions import Embedded, Embedder, addition_features, image_files, list_batches, sha256
from graphhash.database.changes import Addition, Change, State, locked, net, read_changes, write_changes
from graphhash.errors import GraphhashError
from graphhash.files.additions import Batch, write_batch
from graphhash.files.atomic import WriteError, write_bytes
from graphhash.files.codes import pack
from graphhash.files.features import read_features_attrs
from graphhash.files.index import (
    INDEX_FILE,
    PIPELINE,
    StoredIndex,
    find_indexes,
    index_stage,
    read_index,
    write_index,
)
from graphhash.files.manifest import Manifest
from graphhash.files.models import weights_sha256
from graphhash.index import build_index
from graphhash.nrdh.encoder import HASH_MODELS, ItemEncoder, find_hash_network
from graphhash.params import PARAMS_FILE, load_params
from graphhash.params.extract import ExtractParams
from graphhash.runtime import require_memory

log = logging.getLogger(__name__)

Indexes = dict[tuple[str, int, str], StoredIndex]  # a run's indexes by (method, bits, modality)
RUN_PATHS = ("manifest", "features", "codes", "index", "models", "changes", "additions", "uploads")


def run_paths(root: str | Path = ".") -> dict[str, Path]:
    """The run's artefact paths, as the repository's ``dvc.yaml`` names them under ``vars.paths``."""
    root = Path(root)
    try:
        variables = yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8"))["vars"]
        paths = next(entry["paths"] for entry in variables if isinstance(entry, dict) and "paths" in entry)
        return {name: root / paths[name] for name in RUN_PATHS}
    except (OSError, yaml.YAMLError, KeyError, TypeError, StopIteration) as exc:
        raise GraphhashError(f"{root / 'dvc.yaml'}: cannot read the run's paths (vars.paths): {exc!r}") from None


def read_checked_index(folder: Path, models: Path | None) -> StoredIndex:
    """The index in ``folder``, once its codes are known to come from the hash network now in ``models`` (codes of
    two networks never mix: a network retrained after the index was built is one line naming the stage to rerun)."""
    stored = read_index(folder)
    if models is not None:
        model = find_hash_network(models, stored.method, stored.bits, stored.modality)
        if stored.model_sha256 != weights_sha256(model):
            raise GraphhashError(f"{folder / INDEX_FILE}: its codes were made by another hash network than {model}'s "
                                 f"(trained since); rerun: dvc repro {index_stage(folder)}")  # fmt: skip
    return stored


def unknown_labels(like: np.ndarray, count: int) -> np.ndarray:
    """Labels of ``count`` added items, of the kind of ``like``: class -1, or a row with no label set."""
    if like.ndim == 2:
        return np.zeros((count, like.shape[1]), dtype=bool)
    return np.full(count, -1, dtype=np.int64)


def hash_additions(encoder: ItemEncoder, adds: list[Addition], features: np.ndarray, root: Path) -> np.ndarray:
    """Packed codes (n, B) of additions, as the hash stage hashed the run's items: an MLP hashes their features
    (n, D), from their batch files; a CNN hashes their images, read again from their files."""
    if not adds:
        return np.zeros((0, -(-encoder.bits // 8)), dtype=np.uint8)
    if encoder.config.get("model") == HASH_MODELS["cnn"]:
        images = [np.asarray(decode((root / a.change.path).read_bytes(), a.change.path)) for a in adds]
        return pack(encoder.encode_images(images))
    return pack(encoder.encode_features(features, where="the additions' features"))


def pending(stored: StoredIndex, state: State) -> tuple[np.ndarray, list[Addition]]:
    """What an index lacks of ``state``: its slots to remove (items taken out, additions no longer live) and the live
    additions of its modality it does not hold, in the order they were added."""
    live = {a.serial: a for a in state.additions.values() if a.change.modality == stored.modality}
    searched = ~stored.removed
    pipeline = stored.serials == PIPELINE
    out = np.fromiter((item_id in state.removed for item_id in stored.ids), dtype=bool, count=len(stored.ids))
    dropped = ~np.isin(stored.serials, np.fromiter(live, dtype=np.int64, count=len(live)))
    gone = np.flatnonzero(searched & np.where(pipeline, out, dropped))
    have = set(stored.serials[searched & ~pipeline].tolist())
    return gone, [a for serial, a in live.items() if serial not in have]


@contextmanager
def _written(changes: Path) -> Iterator[None]:
    """A write that fails (a full disk, a file size limit) is one line saying what the database holds: the state
    before the change when the changes file was not written yet, else the change, which the next add, remove or sync
    completes in the indexes that missed it."""
    before = changes.read_bytes() if changes.is_file() else b""
    try:
        yield
    except WriteError as exc:
        made = changes.is_file() and changes.read_bytes() != before
        state = ("the change is recorded; the next graphhash add or remove completes the indexes" if made else
                 "nothing was changed")  # fmt: skip
        raise GraphhashError(f"{exc}; {state}") from None


@dataclass(frozen=True)
class Incoming:
    """An item to add: its id, its file, and for an item of features its row of the file's matrix (-1: an image)."""

    id: str
    path: Path
    row: int = -1


@dataclass
class Report:
    """What a change did: the ids it added or removed, and the files it skipped, each with why."""

    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


class Database:
    """A run's searchable database, opened at the repository ``root`` after ``dvc repro``; see the module's text.

    Args:
        root: the repository whose pipeline ran.
        device: where images are embedded and hashed.
        max_pixels: an added image whose header declares more pixels is refused before it is decoded.
        on_bad_image: ``fail`` (an unreadable file among many stops the add, naming it; nothing is added) or
            ``skip`` (it is left out and reported); default: params.yaml's ``extract.on_bad_image``.

    >>> report = Database(".").add(["new-photos/"])  # doctest: +SKIP
    >>> Database(".").remove(report.done[:1])  # doctest: +SKIP
    """

    def __init__(self, root: str | Path = ".", *, device: str = "auto", max_pixels: int | None = MAX_PIXELS,
                 on_bad_image: str | None = None):  # fmt: skip
        self.root = Path(root)
        self.paths = run_paths(self.root)
        (self.extract,) = load_params(ExtractParams, path=self.root / PARAMS_FILE)
        self.device, self.max_pixels = device, max_pixels
        self.on_bad_image = on_bad_image or self.extract.on_bad_image
        self._training: dict[str, tuple] = {}
        self._encoders: dict[tuple[Path, str], ItemEncoder] = {}
        self._embedder: Embedder | None = None

    # -- the changes ------------------------------------------------------------------------------------

    def add(self, inputs: list[str | Path], *, allow_duplicates: bool = False, wait: bool = False) -> Report:
        """Add image files, and the image files under folders (sorted), each with its path as named for id. An image
        whose content is already in the database is skipped (``allow_duplicates``: added again); an id already in
        it with other content is one line. ``wait``: queue behind a change in progress instead of refusing."""
        files = image_files(inputs)
        incoming = [Incoming(Path(os.path.normpath(f)).as_posix(), f) for f in files]
        return self._add(incoming, "image", allow_duplicates, wait)

    def add_vectors(self, path: str | Path, modality: str, *, ids: list[str] | None = None,
                    allow_duplicates: bool = False, wait: bool = False) -> Report:  # fmt: skip
        """Add items of features rather than images: the rows of the ``.npy`` matrix at ``path`` (n, D), in the run's
        ``modality`` (a paired run's ``text``: its items then hold that modality alone, and join that modality's
        indexes). ``ids``: one per row (default ``<file name>/<row>``); otherwise as ``add``."""
        path = Path(path)
        dims = json.loads(read_features_attrs(self.paths["features"]).get("dims", "{}"))
        if modality not in dims:
            raise GraphhashError(f"--modality {modality}: the run's items hold {', '.join(dims)}")
        matrix = load_npy(path, str(path), mapped=True)
        if matrix.ndim != 2 or matrix.shape[1] != int(dims[modality]) or not matrix.dtype.kind == "f":
            raise GraphhashError(f"{path}: a {matrix.dtype} array of shape {matrix.shape}; the run's {modality} "
                                 f"features are float rows of {dims[modality]} values")  # fmt: skip
        require_memory(str(path), 2 * len(matrix) * matrix.shape[1] * 4, f"its {len(matrix):,} rows as float32")
        ids = ids if ids is not None else [f"{path.stem}/{row}" for row in range(len(matrix))]
        if len(ids) != len(matrix):
            raise GraphhashError(f"{path}: {len(matrix):,} rows but {len(ids):,} ids")
        incoming = [Incoming(item_id, path, row) for row, item_id in enumerate(ids)]
        return self._add(incoming, modality, allow_duplicates, wait, np.asarray(matrix, dtype=np.float32))

    def add_upload(self, name: str, data: bytes, folder: Path, *, wait: bool = True) -> Report:
        """Add an uploaded image: its bytes are kept as ``folder/<digest>-<name>`` (so that the pipeline can embed it
        again), its id that path relative to the repository."""
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in Path(name).name)[-100:] or "upload"
        path = folder / f"{sha256(data)[:16]}-{safe}"
        kept = path.is_file()
        if not kept:
            write_bytes(path, data)
        report = Report()
        try:
            report = self._add([Incoming(self._recorded(path), path)], "image", False, wait)
        finally:
            if not kept and not report.done:  # not added (there already, or refused): no copy left behind
                path.unlink(missing_ok=True)
        return report

    def remove(self, item_ids: list[str], *, wait: bool = False) -> Report:
        """Take items out of the database by id: additions, or items of the pipeline's database. An id that is not in
        the database is one line, and nothing is removed."""
        with locked(self.paths["changes"], wait=wait):
            changes = read_changes(self.paths["changes"])
            state = net(changes)
            indexes = self._synced(state, changes)
            pipeline = self._pipeline_ids(indexes)
            wanted = list(dict.fromkeys(item_ids))
            for item_id in wanted:
                if item_id not in state.additions and (item_id not in pipeline or item_id in state.removed):
                    gone = " (removed already)" if item_id in state.removed else ""
                    raise GraphhashError(f"id {item_id!r}: not in the database{gone}; nothing was removed")
            changes = changes + [Change(op="remove", id=item_id) for item_id in wanted]
            with _written(self.paths["changes"]):
                write_changes(self.paths["changes"], changes)
                self._synced(net(changes), changes, read=indexes)
        return Report(done=wanted)

    def sync(self, *, wait: bool = True) -> None:
        """Bring every index up to the changes file (after a change that was killed before it had updated them)."""
        with locked(self.paths["changes"], wait=wait):
            changes = read_changes(self.paths["changes"])
            self._synced(net(changes), changes)

    # -- inside ------------------------------------------------------------------------------------------

    def _recorded(self, path: Path) -> str:
        """How the changes file records ``path``: relative to the repository when inside it, else absolute."""
        absolute = path.resolve()
        try:
            return absolute.relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return absolute.as_posix()

    def _add(self, incoming: list[Incoming], modality: str, allow_duplicates: bool, wait: bool,
             matrix: np.ndarray | None = None) -> Report:  # fmt: skip
        """Add ``incoming`` items of ``modality``: image files, or the rows of ``matrix`` (features)."""
        report = Report()
        with locked(self.paths["changes"], wait=wait):
            changes = read_changes(self.paths["changes"])
            state = net(changes)
            indexes = self._synced(state, changes)
            pipeline = self._pipeline_ids(indexes)
            held = {a.change.sha256: a.change.id for a in state.additions.values()}
            if not allow_duplicates:
                searched = pipeline - state.removed
                held |= {d: i for d, i in self._pipeline_digests(pipeline).items() if i in searched}
            taken = {item_id for item_id in pipeline if item_id not in state.removed} | set(state.additions)
            planned: list[tuple[Incoming, str]] = []
            for item in incoming:
                item_id, path = item.id, item.path
                try:
                    digest = sha256(path.read_bytes() if matrix is None else matrix[item.row].tobytes())
                except OSError as exc:
                    if self.on_bad_image == "fail":
                        raise GraphhashError(f"{path}: cannot read: {exc.strerror or exc} (set extract.on_bad_image: "
                                             "skip to leave such files out)") from None  # fmt: skip
                    report.skipped.append(f"{path}: cannot read: {exc.strerror or exc}")
                    continue
                if digest in held and not allow_duplicates:
                    report.skipped.append(f"{path}: already in the database as {held[digest]!r} (same content)")
                    continue
                if item_id in taken:
                    raise GraphhashError(f"id {item_id!r}: already in the database with other content; remove it "
                                         "first (graphhash remove), or add the file under another name")  # fmt: skip
                held[digest] = item_id
                taken.add(item_id)
                planned.append((item, digest))
            if not planned:
                return report
            embedder = Embedder(self.paths["features"], self.extract) if matrix is not None else self._embedder_of_run()
            if matrix is None:
                embedded = embedder.embed([(str(item.path), item.path) for item, _ in planned])
            else:
                rows = matrix[[item.row for item, _ in planned]]
                finite = np.isfinite(rows).all(axis=1)
                why = [f"{item.path}: row {item.row}: its features hold NaN or infinite values" for item, _ in planned]
                embedded = Embedded(rows, ["" if ok else w for w, ok in zip(why, finite, strict=True)])
            bad = [error for error in embedded.errors if error]
            if bad and self.on_bad_image == "fail":
                raise GraphhashError(f"{bad[0]} (set extract.on_bad_image: skip to leave such files out); nothing "
                                     "was added")  # fmt: skip
            report.skipped += bad
            keep = [not error for error in embedded.errors]
            batch = state.batches + 1
            kept = [entry for entry, ok in zip(planned, keep, strict=True) if ok]
            new = [Change(op="add", id=item.id, batch=batch, modality=modality, path=self._recorded(item.path),
                          sha256=digest, row=item.row) for item, digest in kept]  # fmt: skip
            if not new:
                return report
            serials = np.arange(len(changes) + 1, len(changes) + 1 + len(new))
            features = embedded.features[np.array(keep)]
            with _written(self.paths["changes"]):
                self._record(new, serials, features, changes, embedder, indexes)
            report.done = [c.id for c in new]
        return report

    def _record(self, new: list[Change], serials: np.ndarray, features: np.ndarray, changes: list[Change],
                embedder: Embedder, indexes: Indexes) -> None:  # fmt: skip
        """Write an add: its batch file, then the changes file (the add is made), then every index."""
        batch = Batch(batch=new[0].batch, modality=new[0].modality, ids=[c.id for c in new],
                      sha256=[c.sha256 for c in new], serials=serials, features=features,
                      embedding=embedder.settings)  # fmt: skip
        write_batch(self.paths["additions"], batch)
        changes = changes + new
        list_batches(self.paths["additions"], changes)
        write_changes(self.paths["changes"], changes)
        known = {int(s): row for s, row in zip(serials, features, strict=True)}
        self._synced(net(changes), changes, known, read=indexes)

    def _embedder_of_run(self) -> Embedder:
        """The run's backbone, loaded once; a run of feature vectors (no backbone) is one line."""
        if self._embedder is None:
            embedder = Embedder(self.paths["features"], self.extract, max_pixels=self.max_pixels)
            if embedder.settings["backbone"] not in BACKBONES:
                raise GraphhashError(f"{self.paths['features']}: the run's items are feature vectors "
                                     f"({embedder.attrs.get('source')}), made without a backbone: graphhash add takes "
                                     "images, for runs whose features a backbone made")  # fmt: skip
            self._embedder = embedder
        return self._embedder

    def _pipeline_ids(self, indexes: Indexes) -> set[str]:
        """The ids of the pipeline's database items (every index holds them, less those removed)."""
        stored = next(iter(indexes.values()))
        return {item_id for item_id, serial in zip(stored.ids, stored.serials, strict=True) if serial == PIPELINE}

    def _pipeline_digests(self, item_ids: set[str]) -> dict[str, str]:
        """The content digest of every item of the pipeline's database (``item_ids``) -> its id, read from the run's
        data source once and kept beside the changes file (for the data's content digest, which the features file
        records)."""
        content = str(read_features_attrs(self.paths["features"]).get("content_sha256"))
        cache = self.paths["changes"].parent / f".{self.paths['changes'].name}.digests.npz"
        if cache.is_file():
            with np.load(cache) as saved:
                if str(saved["content"]) == content:
                    return dict(zip(saved["digests"].tolist(), saved["ids"].tolist(), strict=True))
        manifest = Manifest.load(self.paths["manifest"])
        source = open_source(manifest.source, manifest.path)
        ids = sorted(item_ids)
        log.info("add: reading the digests of the %d items of the database once (kept in %s)", len(ids), cache)
        digests = [sha256(source.read(item_id)) for item_id in ids]
        buffer = io.BytesIO()
        np.savez(buffer, content=np.array(content), digests=np.array(digests), ids=np.array(ids))
        try:
            write_bytes(cache, buffer.getvalue())
        except WriteError as exc:  # only a cache: the next add reads the digests again
            log.warning("add: %s", exc)
        return dict(zip(digests, ids, strict=True))

    def _encoder(self, method: str, bits: int, modality: str) -> ItemEncoder:
        """The hash network of one index, loaded once while its weights stay the same (a server adds many times)."""
        folder = find_hash_network(self.paths["models"], method, bits, modality)
        key = (folder, weights_sha256(folder))
        if key not in self._encoders:
            self._encoders[key] = ItemEncoder.load(folder, self.paths["features"], weights=self.extract.weights,
                                                   weights_path=self.extract.weights_path, device=self.device,
                                                   training=self._training.get(modality))  # fmt: skip
        return self._encoders[key]

    def _synced(self, state: State, changes: list[Change], known: dict[int, np.ndarray] | None = None,
                read: Indexes | None = None) -> Indexes:  # fmt: skip
        """Every index, brought up to ``state``: additions it lacks hashed and added, items taken out removed.
        ``known``: features of additions by serial, when in memory (else read from their batch files); ``read``: the
        indexes as this change read them, under the same lock (else read from their files)."""
        found = find_indexes(self.paths["index"])
        if not found:
            raise GraphhashError(f"{self.paths['index']}: no index yet; run the pipeline first (dvc repro)")
        indexes = {}
        for key, folder in found.items():
            stored = (read or {}).get(key) or read_checked_index(folder, self.paths["models"])
            indexes[key] = self._sync_index(folder, key, stored, state, changes, known or {})
        return indexes

    def _sync_index(self, folder: Path, key: tuple[str, int, str], stored: StoredIndex, state: State,
                    changes: list[Change], known: dict[int, np.ndarray]) -> StoredIndex:  # fmt: skip
        method, bits, modality = key
        gone, adds = pending(stored, state)
        if not len(gone) and not adds:
            return stored
        added = np.zeros((0, stored.codes.shape[1]), dtype=np.uint8)
        if adds:
            encoder = self._encoder(method, bits, modality)
            missing = [a.serial for a in adds if a.serial not in known]
            read = addition_features(self.paths["additions"], missing, changes) if missing else None
            rows = dict(zip(missing, read, strict=True)) if missing else {}
            features = np.stack([known.get(a.serial, rows.get(a.serial)) for a in adds])
            added = hash_additions(encoder, adds, features, self.root)
            if "run_training" in encoder.__dict__:  # loaded: the other code lengths' networks share it
                self._training.setdefault(modality, encoder.run_training)
        kind = build_index(stored.kind, stored.options)
        labels, serials = unknown_labels(stored.labels, len(adds)), np.array([a.serial for a in adds], dtype=np.int64)
        updated = kind.changed(stored, gone, added, [a.change.id for a in adds], labels, serials)
        write_index(folder, updated)
        log.info("%s: %d added, %d removed: %d items", folder, len(adds), len(gone), updated.count)
        return updated
