"""The ``index@<filter>-<bits>`` stage: a FAISS binary index over the database codes of one NRDH method and code
length, one per modality (``<out>/<modality>/``: for paired data the images' and the texts' codes, both searched
by queries of either modality).

The index serves ``graphhash search`` and ``graphhash serve``: queries hashed by the filter's hash network
are searched in it. ``index.kind: auto`` is resolved here, by the database's size, and the resolved kind is
what the folder records.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from graphhash.errors import GraphhashError
from graphhash.files.codes import find_code_files, nrdh_method, read_codes
from graphhash.files.index import StoredIndex, write_index
from graphhash.index import build_index, resolve_kind
from graphhash.params.index import IndexParams

log = logging.getLogger(__name__)


def index_codes(codes_folder: Path, filter_name: str, bits: int, params: IndexParams, out: Path) -> None:
    """Index the database codes of ``nrdh-<filter>`` at ``bits`` bits (found in ``codes_folder``) into
    ``<out>/<modality>`` for each modality."""
    method = nrdh_method(filter_name)
    files = {
        modality: path for (m, b, modality), path in find_code_files(codes_folder).items() if (m, b) == (method, bits)
    }
    if not files:
        raise GraphhashError(f"{codes_folder}: no code file of {method} at {bits} bits; run the hash stage (dvc repro)")
    for modality, path in files.items():
        codes = read_codes(path)
        kind = resolve_kind(params.kind, len(codes.database))
        kind_index = build_index(kind, params.options(kind))
        start = time.perf_counter()
        index = kind_index.build(codes.database)
        log.info("index: %s over %d %s codes of %d bits built in %.2f s", kind, len(codes.database), modality, bits,
                 time.perf_counter() - start)  # fmt: skip
        asked, used = kind_index.options(), kind_index.used(index)
        changed = {key: value for key, value in asked.items() if value and value != used[key]}  # 0: "by the size"
        if changed:
            log.warning("index: %s asked for %s, but %d codes allow %s: built and recorded with those", kind,
                        _pairs({key: asked[key] for key in changed}, f"index.{kind}."), len(codes.database),
                        _pairs({key: used[key] for key in changed}))  # fmt: skip
        stored = StoredIndex(index=index, codes=codes.database, ids=codes.database_ids, labels=codes.database_labels,
                             method=codes.method, bits=codes.bits, modality=modality, kind=kind,
                             options=used)  # fmt: skip
        write_index(out / modality, stored)


def _pairs(values: dict[str, int], prefix: str = "") -> str:
    return ", ".join(f"{prefix}{key} {value:,}" for key, value in values.items())
