"""The ``index@<filter>-<bits>`` stage: a FAISS binary index over the database codes of one NRDH method and code
length, one per modality (``<out>/<modality>/``: for paired data the images' and the texts' codes, both searched
by queries of either modality).

The database is the pipeline's (the code file's database items), less the items ``graphhash remove`` took out,
then the items ``graphhash add`` added, in the order they were added, hashed here by the filter's hash network
from their features (``graphhash.database``): after a retraining, the additions are re-hashed by the new network.

The index serves ``graphhash search`` and ``graphhash serve``: queries hashed by the filter's hash network
are searched in it. ``index.kind: auto`` is resolved here, by the database's size, and the resolved kind is
what the folder records.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from graphhash.database.additions import addition_features
from graphhash.database.changes import net, read_changes
from graphhash.database.run import hash_additions, unknown_labels
from graphhash.errors import GraphhashError
from graphhash.files.codes import find_code_files, nrdh_method, read_codes
from graphhash.files.index import PIPELINE, StoredIndex, write_index
from graphhash.files.models import weights_sha256
from graphhash.index import build_index, resolve_kind
from graphhash.nrdh.encoder import ItemEncoder, find_hash_network
from graphhash.params.extract import ExtractParams
from graphhash.params.index import IndexParams

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Run:
    """The run's files an index needs besides the codes: the features file (the graph an added item joins), the
    models folder (the hash networks), the changes file and the additions folder."""

    features: Path
    models: Path
    changes: Path
    additions: Path


def index_codes(
    codes_folder: Path, filter_name: str, bits: int, params: IndexParams, extract: ExtractParams, run: Run, out: Path
) -> None:
    """Index the database codes of ``nrdh-<filter>`` at ``bits`` bits (found in ``codes_folder``), with the run's
    changes, into ``<out>/<modality>`` for each modality."""
    method = nrdh_method(filter_name)
    changes = read_changes(run.changes)
    state = net(changes)
    files = {
        modality: path for (m, b, modality), path in find_code_files(codes_folder).items() if (m, b) == (method, bits)
    }
    if not files:
        raise GraphhashError(f"{codes_folder}: no code file of {method} at {bits} bits; run the hash stage (dvc repro)")
    for modality, path in files.items():
        codes = read_codes(path)
        model = find_hash_network(run.models, method, bits, modality)
        kept = np.array([item_id not in state.removed for item_id in codes.database_ids], dtype=bool)
        adds = [a for a in state.additions.values() if a.change.modality == modality]
        added = np.zeros((0, codes.database.shape[1]), dtype=np.uint8)
        if adds:
            encoder = ItemEncoder.load(model, run.features, weights=extract.weights, weights_path=extract.weights_path)
            features = addition_features(run.additions, [a.serial for a in adds], changes)
            added = hash_additions(encoder, adds, features, Path("."))
        database = np.concatenate([codes.database[kept], added])
        if not len(database):
            raise GraphhashError(f"{run.changes}: every item of the database was removed; nothing to index")
        kind = resolve_kind(params.kind, len(database))
        kind_index = build_index(kind, params.options(kind))
        start = time.perf_counter()
        index = kind_index.build(database)
        log.info("index: %s over %d %s codes of %d bits (%d added, %d removed) built in %.2f s", kind, len(database),
                 modality, bits, len(adds), int((~kept).sum()), time.perf_counter() - start)  # fmt: skip
        asked, used = kind_index.options(), kind_index.used(index)
        changed = {key: value for key, value in asked.items() if value and value != used[key]}  # 0: "by the size"
        if changed:
            log.warning("index: %s asked for %s, but %d codes allow %s: built and recorded with those", kind,
                        _pairs({key: asked[key] for key in changed}, f"index.{kind}."), len(database),
                        _pairs({key: used[key] for key in changed}))  # fmt: skip
        labels = np.concatenate([codes.database_labels[kept], unknown_labels(codes.database_labels, len(adds))])
        serials = np.concatenate([np.full(int(kept.sum()), PIPELINE), [a.serial for a in adds]]).astype(np.int64)
        ids = [item_id for item_id, keep in zip(codes.database_ids, kept, strict=True) if keep]
        stored = StoredIndex(index=index, codes=database, ids=ids + [a.change.id for a in adds], labels=labels,
                             method=codes.method, bits=codes.bits, modality=modality, kind=kind, options=used,
                             model_sha256=weights_sha256(model), serials=serials)  # fmt: skip
        write_index(out / modality, stored)


def _pairs(values: dict[str, int], prefix: str = "") -> str:
    return ", ".join(f"{prefix}{key} {value:,}" for key, value in values.items())
