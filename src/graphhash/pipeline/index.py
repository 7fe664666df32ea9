"""The ``index@<filter>-<bits>`` stage: a FAISS binary index over one NRDH code file's database codes.

The index serves ``graphhash search`` and ``graphhash serve``: queries hashed by the filter's hash network
are searched in it. ``index.kind: auto`` is resolved here, by the database's size, and the resolved kind is
what the folder records.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from graphhash.files.codes import code_file, nrdh_method, read_codes
from graphhash.files.index import StoredIndex, write_index
from graphhash.index import build_index, resolve_kind
from graphhash.params.index import IndexParams

log = logging.getLogger(__name__)


def index_codes(codes_folder: Path, filter_name: str, bits: int, params: IndexParams, out: Path) -> None:
    """Index the database codes of ``nrdh-<filter>`` at ``bits`` bits (found in ``codes_folder``) into ``out``."""
    codes = read_codes(code_file(codes_folder, nrdh_method(filter_name), bits))
    kind = resolve_kind(params.kind, len(codes.database))
    kind_index = build_index(kind, params.options(kind))
    start = time.perf_counter()
    index = kind_index.build(codes.database)
    log.info("index: %s over %d codes of %d bits built in %.2f s", kind, len(codes.database), bits,
             time.perf_counter() - start)  # fmt: skip
    write_index(out, StoredIndex(index=index, codes=codes.database, ids=codes.database_ids,
                                 labels=codes.database_labels, method=codes.method, bits=codes.bits, kind=kind,
                                 options=kind_index.options()))  # fmt: skip
