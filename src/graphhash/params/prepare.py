"""``prepare``: which data, how many items, and how they are split into queries, database and training set.

``prepare.synthetic`` holds the synthetic source's mixture, built from ``SyntheticSource``'s signature; the
other sources have no hyperparameters, and no sub-section.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, ValidationInfo, create_model, field_validator

from graphhash.data.sources import SOURCES, SyntheticSource
from graphhash.hyperparameters import Seed
from graphhash.params import Section, options_fields

SourceName = Literal[tuple(SOURCES)]


def size(value: int | float) -> int | float:
    """A count per class (int >= 1) or a fraction of each class (float strictly between 0 and 1)."""
    if isinstance(value, int) and value < 1:
        raise ValueError("must be a count >= 1 or a fraction in (0, 1)")
    if isinstance(value, float) and not 0.0 < value < 1.0:
        raise ValueError("must be a fraction in (0, 1) or a count >= 1")
    return value


Size = Annotated[int | float, AfterValidator(size)]


def size_or_none(value: int | float) -> int | float:
    """0, or a ``size``."""
    return value if value == 0 and isinstance(value, int) else size(value)


class _Prepare(Section):
    """The data: where it is, how much of it, and its split (queries and database always disjoint)."""

    section = "prepare"

    source: SourceName = Field(
        "digits",
        description=f"where the items come from: {' | '.join(SOURCES)} (digits: bundled, offline; synthetic: "
        "a Gaussian mixture made from prepare.synthetic; wiki: image-text pairs; mirflickr_tags: multi-label tags; "
        "paired: your own features of two or more modalities, see graphhash.data.paired)",
    )
    path: str = Field(
        "",
        description="the image folder, the CIFAR-10 tar or folder, the npy folder, the wiki or mirflickr_tags "
        "dataset's folder, or paired's folder (<modality>.npy files and ids.txt) or HDF5 file; unused by digits and "
        "synthetic",
    )
    seed: Seed = Field(0, description="seeds the subsample and the split")
    split: Literal["auto", "random"] = Field(
        "auto",
        description="auto: a dataset's own test set is the query set (cifar10, wiki, paired with its query list) | "
        "random: draw queries",
    )
    labels: str = Field(
        "folders",
        description="where the labels come from: folders (a tree of files: its first-level sub-folders are the "
        "classes; any other source: its own labels) | none (no labels: every item found at any depth; label-free "
        "metrics only) | a labels file (CSV or TSV: an item's path relative to prepare.path, then its label, or "
        "several separated by ';'; see graphhash.data.labels)",
    )
    query_size: Size = Field(
        20,
        description="queries per class: a count (int >= 1) or a fraction (0 < float < 1); multi-label or "
        "unlabelled items: in all",
    )
    train: Literal["database", "disjoint", "sample"] = Field(
        "database",
        description="database: train on the database (the unsupervised protocol) | disjoint: a training set apart "
        "from it | sample: train on a seeded sample of the database, every database item still hashed and indexed",
    )
    train_size: Size = Field(
        0.5,
        description="with train: disjoint or sample, training items per class (multi-label or unlabelled items: in "
        "all): count or fraction",
    )
    limit_per_class: Annotated[int, Field(ge=0)] = Field(
        0, description="0: every item | N: a seeded sample of N items per class (per part for cifar10)"
    )
    validation_size: Annotated[int | float, AfterValidator(size_or_none)] = Field(
        0,
        description="0: the test protocol | a validation run, for choosing settings: the queries above are left "
        "out altogether, and this many database items per class (count or fraction; multi-label items: in all) "
        "become the queries, out of the database and the training set",
    )

    @field_validator("labels")
    @classmethod
    def _labels_kind(cls, labels: str) -> str:
        if labels in ("folders", "none"):
            return labels
        if not labels.lower().endswith((".csv", ".tsv")):
            raise ValueError(f"must be folders, none, or a labels file ending in .csv or .tsv, not {labels!r}")
        return labels

    @field_validator("path")
    @classmethod
    def _path_given(cls, path: str, info: ValidationInfo) -> str:
        source: Any = info.data.get("source")
        if path == "" and source in SOURCES and SOURCES[source].reads_path:
            raise ValueError(f"is empty but source '{source}' reads its data from a path")
        return path

    @property
    def source_path(self) -> str:
        """The path the source opens and the manifest records, for later stages to reopen the same source:
        ``path``, or the synthetic mixture written out (``SyntheticSource.address``)."""
        if self.source == "synthetic":
            return SyntheticSource(**self.options("synthetic")).address
        return self.path


PrepareParams = create_model("PrepareParams", __base__=_Prepare, __doc__=_Prepare.__doc__, **options_fields(SOURCES))
