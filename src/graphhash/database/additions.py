"""Added items' features: embedding image files as the run embedded its own, and the additions folder that keeps
them (``graphhash.files.additions``), one file per ``graphhash add``.

``graphhash add`` embeds its new files and writes their batch file itself; the ``additions`` stage
(``sync_additions``) checks every batch the changes file names against its file and embeds again only a batch whose
file is missing or was made by another embedding (the backbone, its weights or image size changed), so that a
``dvc repro`` after an add embeds nothing, and a retrained hash network re-hashes the additions from these files.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from graphhash.data.images import IMAGE_EXTENSIONS, MAX_PIXELS, BadItemError, decode, load_npy
from graphhash.data.storage import visible_files
from graphhash.database.changes import Change, net, read_changes
from graphhash.errors import GraphhashError
from graphhash.files.additions import Batch, batch_file, read_batch, write_batch, write_listing
from graphhash.files.features import read_features_attrs
from graphhash.nrdh.encoder import RunBackbone
from graphhash.params.extract import ExtractParams
from graphhash.runtime import resolve_device

log = logging.getLogger(__name__)


def image_files(paths: list[str | Path]) -> list[Path]:
    """Image files named, and the image files under folders named (sorted); anything else is one line."""
    found: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            inside = [p for p in visible_files(path) if p.suffix.lower() in IMAGE_EXTENSIONS]
            if not inside:
                raise GraphhashError(f"{path}: a folder with no image files ({', '.join(IMAGE_EXTENSIONS)})")
            found += inside
        elif path.is_file():
            found.append(path)
        else:
            raise GraphhashError(f"{path}: no such file or folder")
    return found


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Embedded:
    """Features of files, a row each (zeros where ``errors`` holds why a file could not be embedded)."""

    features: np.ndarray  # (n, D) float32
    errors: list[str]  # '' for a row embedded


class Embedder:
    """The run's backbone (``RunBackbone``) embedding image files in batches of ``extract.batch_size``.

    Args:
        features: the run's features file (its backbone, weights and image size).
        extract: params.yaml's extract section (the weights asked for, the batch size, the device).
        max_pixels: an image whose header declares more pixels is refused before it is decoded.
    """

    def __init__(self, features: Path, extract: ExtractParams, *, max_pixels: int | None = MAX_PIXELS):
        self.features, self.extract, self.max_pixels = features, extract, max_pixels
        self.attrs = read_features_attrs(features)
        self._backbone: RunBackbone | None = None

    @property
    def backbone(self) -> RunBackbone:
        if self._backbone is None:
            device = resolve_device(self.extract.device, "extract.device")
            self._backbone = RunBackbone(self.features, self.attrs, self.extract.weights, self.extract.weights_path,
                                         device)  # fmt: skip
        return self._backbone

    @property
    def settings(self) -> dict[str, object]:
        """What makes the features: the run's backbone, weights and image size (checked before anything is loaded)."""
        return {key: self.attrs.get(key) for key in ("backbone", "weights", "image_size")}

    def embed(self, files: list[tuple[str, bytes | Path]]) -> Embedded:
        """Features of (name, bytes or path) pairs; a file that cannot be read or decoded, is over the pixel limit,
        or whose features are not finite gets its reason (naming it) in ``errors``."""
        features, errors = None, []
        step = self.extract.batch_size
        for start in range(0, len(files), step):
            images, rows = [], []
            for row, (name, data) in enumerate(files[start : start + step], start=start):
                try:
                    raw = data.read_bytes() if isinstance(data, Path) else data
                    images.append(np.asarray(decode(raw, name, self.max_pixels), dtype=np.uint8))
                    rows.append(row)
                    errors.append("")
                except OSError as exc:
                    errors.append(f"{name}: cannot read: {exc.strerror or exc}")
                except BadItemError as exc:
                    errors.append(str(exc).splitlines()[0])
            if images:
                found = self.backbone.embed(images)
                if features is None:
                    features = np.zeros((len(files), found.shape[1]), dtype=np.float32)
                features[rows] = found
                for row in np.array(rows)[~np.isfinite(found).all(axis=1)]:
                    errors[row] = f"{files[row][0]}: its image features hold NaN or infinite values"
        if features is None:
            features = np.zeros((len(files), 0), dtype=np.float32)
        return Embedded(features, errors)


def matrix_rows(changes: list[Change], root: Path) -> Embedded:
    """The rows of additions of features (``Change.row`` of the ``.npy`` matrix at ``Change.path``), each checked
    against its digest; an unreadable matrix or a missing row gives that row zeros and its reason."""
    matrices: dict[str, np.ndarray | str] = {}
    rows, errors = [], []
    for change in changes:
        if change.path not in matrices:
            try:
                matrices[change.path] = load_npy(root / change.path, change.path)
            except BadItemError as exc:
                matrices[change.path] = str(exc).splitlines()[0]
            except OSError as exc:
                matrices[change.path] = f"{change.path}: cannot read: {exc.strerror or exc}"
        found = matrices[change.path]
        if isinstance(found, str) or found.ndim != 2 or not 0 <= change.row < len(found):
            rows.append(None)
            errors.append(found if isinstance(found, str) else f"{change.path}: no row {change.row}")
            continue
        row = np.ascontiguousarray(found[change.row], dtype=np.float32)
        if sha256(row.tobytes()) != change.sha256:
            raise GraphhashError(f"{change.path}: row {change.row} changed since it was added as {change.id!r}; "
                                 f"graphhash remove {change.id} and add it again")  # fmt: skip
        rows.append(row)
        errors.append("")
    width = next((len(r) for r in rows if r is not None), 0)
    return Embedded(np.stack([r if r is not None else np.zeros(width, np.float32) for r in rows]) if rows else
                    np.zeros((0, width), np.float32), errors)  # fmt: skip


def batches(changes: list[Change]) -> dict[int, list[tuple[int, Change]]]:
    """The adds of ``changes`` by batch (the ``graphhash add`` that made them), with their serials, in order."""
    found: dict[int, list[tuple[int, Change]]] = {}
    for serial, change in enumerate(changes, start=1):
        if change.op == "add":
            found.setdefault(change.batch, []).append((serial, change))
    return found


def current(path: Path, adds: list[tuple[int, Change]], settings: dict[str, object]) -> bool:
    """True when the batch file ``path`` holds exactly ``adds``, embedded with ``settings``."""
    if not path.is_file():
        return False
    try:
        held = read_batch(path)
    except GraphhashError:
        return False
    wanted = ([c.id for _, c in adds], [c.sha256 for _, c in adds], [s for s, _ in adds])
    return (held.ids, held.sha256, held.serials.tolist()) == wanted and held.embedding == settings


def sync_additions(changes_path: Path, embedder: Embedder, folder: Path, root: Path = Path(".")) -> None:
    """Make ``folder`` hold one current batch file per batch of the changes file (the ``additions`` stage): a batch
    whose file is missing or stale is embedded again from its files, each checked against its digest; files of
    batches the changes no longer name are deleted. An item no longer in the database whose file is gone keeps a
    row of zeros (it is never hashed); one still in it is one line naming it. Paths are relative to ``root``, the
    repository."""
    changes = read_changes(changes_path)
    live = {a.serial for a in net(changes).additions.values()}
    grouped = batches(changes)
    folder.mkdir(parents=True, exist_ok=True)
    for number, adds in grouped.items():
        path = batch_file(folder, number)
        if current(path, adds, embedder.settings):
            continue
        if adds[0][1].row >= 0:  # features: read again from their matrix
            embedded = matrix_rows([change for _, change in adds], root)
        else:
            log.info(
                "additions: embedding batch %d (%d items) with %s", number, len(adds), embedder.settings["backbone"]
            )
            files = []
            for _, change in adds:
                source = root / change.path
                data = source.read_bytes() if source.is_file() else b""
                if data and sha256(data) != change.sha256:
                    raise GraphhashError(f"{change.path}: its content changed since it was added as {change.id!r}; "
                                         f"graphhash remove {change.id} and add it again")  # fmt: skip
                files.append((change.path, data))
            embedded = embedder.embed(files)
        for (serial, change), error in zip(adds, embedded.errors, strict=True):
            if error and serial in live:
                raise GraphhashError(f"{error} (added as {change.id!r}); graphhash remove it, or restore the file")
        write_batch(folder, Batch(batch=number, modality=adds[0][1].modality, ids=[c.id for _, c in adds],
                                  sha256=[c.sha256 for _, c in adds], serials=np.array([s for s, _ in adds]),
                                  features=embedded.features, embedding=embedder.settings))  # fmt: skip
    named = {batch_file(folder, number) for number in grouped}
    for stale in sorted(set(folder.glob("batch-*.h5")) - named):
        stale.unlink()
    list_batches(folder, changes)


def list_batches(folder: Path, changes: list[Change]) -> None:
    """Write the additions folder's listing of the batches ``changes`` name (``batches.json``)."""
    write_listing(folder, {number: len(adds) for number, adds in batches(changes).items()})


def addition_features(folder: Path, serials: list[int], changes: list[Change]) -> np.ndarray:
    """The features (n, D) of the additions with ``serials`` (lines of ``changes``), read from their batch files."""
    wanted: dict[int, list[int]] = {}
    for serial in serials:
        wanted.setdefault(changes[serial - 1].batch, []).append(serial)
    rows = {}
    for number, in_batch in wanted.items():
        path = batch_file(folder, number)
        if not path.is_file():
            raise GraphhashError(f"{path}: missing; rerun the additions stage (dvc repro additions)")
        held = read_batch(path)
        where = {int(s): r for r, s in enumerate(held.serials)}
        for serial in in_batch:
            if serial not in where:
                raise GraphhashError(f"{path}: does not hold line {serial} of the changes; rerun the additions stage "
                                     "(dvc repro additions)")  # fmt: skip
            rows[serial] = held.features[where[serial]]
    if not serials:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack([rows[s] for s in serials]).astype(np.float32)
