"""``index``: the search index over each NRDH code file's database codes; ``index.<kind>`` holds its options."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, create_model

from graphhash.index import AUTO, AUTO_IVF_FROM, INDEXES
from graphhash.params import Section, options_fields

IndexKind = Literal[(*INDEXES, AUTO)]


class _Index(Section):
    """The search index over the database codes of every NRDH code file (FAISS binary indexes)."""

    section = "index"

    kind: IndexKind = Field(
        "flat",
        description=f"{' | '.join(INDEXES)} | {AUTO} (flat below {AUTO_IVF_FROM:,} database items, ivf from there); "
        "flat is exact: the evaluator's ranking",
    )


IndexParams = create_model("IndexParams", __base__=_Index, __doc__=_Index.__doc__, **options_fields(INDEXES))
