"""Paired, feature-only data for cross-modal hashing (issue 16): two or more named modalities, each a feature
matrix over the same items, with their labels and the dataset's own split.

``PairedSet``: ``views`` {modality: (N, D_m) float64}, row i of every view is item i; ``labels`` (N,) int64 (one
class per item) or (N, L) bool (a 0/1 multi-label matrix: relevance is a shared label), naming ``classes``; ``ids``
(N,) distinct strings; ``query`` (N,) bool, the dataset's test items (the queries; the others are the database and
training set), or None for a dataset with no published split (``prepare`` draws the queries).

``graphhash.data.sources.paired`` serves these as the ``wiki`` and ``mirflickr_tags`` sources of the pipeline.

Readers keep the files as published (``scipy.io.loadmat`` for MATLAB files) and check them: a missing file, a
modality whose row count or ids differ from the others', or a NaN or infinite feature is one line naming the
file, and nothing is returned.

- ``read_wiki(folder)``: the Wikipedia image-text dataset (Rasiwasia et al., ACM MM 2010) as
  ``../shared/datasets/README.md`` describes it: ``raw_features.mat`` (``I_tr``, ``I_te``: 128-d SIFT bags of
  visual words; ``T_tr``, ``T_te``: 10-d LDA topic proportions), the ``.list`` files giving each row's text id,
  image id and category (1-10, stored 0-9 here; named by ``categories.list`` when present), train rows first, then
  test rows (the queries).
- ``read_mirflickr_tags(folder)``: MIRFlickr-25K's 20,015 items as one modality, ``tags``
  (``mirflickr25k-yall.mat``: ``YAll``, 1,386 binary tags), with ``mirflickr25k-lall.mat``'s ``LAll`` (24 concept
  labels, 1-14 per item) as a multi-label matrix, its columns named ``label-00`` to ``label-23`` (the files do
  not name them). The dataset has no published split, and a split stratified by class does not apply to items of
  several classes: ``prepare`` draws the queries uniformly (``graphhash.data.split``; the common cross-modal
  protocol draws 2,000).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from graphhash.errors import GraphhashError
from graphhash.files.features import require_finite

WIKI_FEATURES = "raw_features.mat"
WIKI_LISTS = {"train": "trainset_txt_img_cat.list", "test": "testset_txt_img_cat.list"}
WIKI_VIEWS = {"image": "I", "text": "T"}  # modality -> the .mat variables' prefix (I_tr, I_te, ...)
WIKI_CATEGORIES = "categories.list"
MIRFLICKR_FILES = {"tags": ("mirflickr25k-yall.mat", "YAll"), "labels": ("mirflickr25k-lall.mat", "LAll")}


@dataclass(frozen=True)
class PairedSet:
    views: dict[str, np.ndarray]
    labels: np.ndarray
    ids: list[str]
    query: np.ndarray | None
    classes: list[str]

    def __post_init__(self):
        counts = {modality: len(x) for modality, x in self.views.items()}
        split = len(self.ids) if self.query is None else len(self.query)
        if len(set(counts.values()) | {len(self.ids), len(self.labels), split}) != 1:
            listed = ", ".join(f"{modality} {count}" for modality, count in counts.items())
            raise GraphhashError(f"paired data: the modalities ({listed}), ids ({len(self.ids)}), labels "
                                 f"({len(self.labels)}) and split ({split}) must count the same items")  # fmt: skip
        if len(set(self.ids)) != len(self.ids):
            raise GraphhashError(f"paired data: {len(self.ids) - len(set(self.ids))} item ids are listed twice")


def _finite(x, where: str) -> np.ndarray:
    """A matrix of a MATLAB file as float64 features (a sparse one made dense), or one line saying what it is."""
    import scipy.sparse

    if scipy.sparse.issparse(x):
        x = x.toarray()
    x = np.asarray(x)
    if np.iscomplexobj(x):
        raise GraphhashError(f"{where}: complex-valued features (dtype {x.dtype}); features are real numbers")
    if x.dtype.kind not in "biuf":
        raise GraphhashError(f"{where}: not a numeric matrix (it holds {x.dtype.name} values)")
    if x.ndim != 2:
        raise GraphhashError(f"{where}: expected a 2-d feature matrix, found shape {x.shape}")
    return require_finite(x.astype(np.float64), where)


def _wiki_list(path: Path) -> tuple[list[str], np.ndarray]:
    """The ids (``<text id>/<image id>``) and 0-based categories of a Wiki ``.list`` file."""
    if not path.is_file():
        raise GraphhashError(f"{path}: not found (the Wiki dataset needs {', '.join(WIKI_LISTS.values())})")
    ids, labels = [], []
    for number, line in enumerate(_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 3 or not fields[2].isdigit() or not 1 <= int(fields[2]) <= 10:
            raise GraphhashError(f"{path}:{number}: expected 'text-id image-id category (1-10)', found {line!r}")
        ids.append(f"{fields[0]}/{fields[1]}")
        labels.append(int(fields[2]) - 1)
    return ids, np.asarray(labels, dtype=np.int64)


def _text(path: Path) -> str:
    """A text file of the dataset, or one line naming it and its first byte that is not UTF-8."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise GraphhashError(f"{path}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x})") from None


def _load_mat(path: Path, what: str) -> dict[str, np.ndarray]:
    """The variables of the MATLAB file ``path`` (``what`` it holds, for the message), or one line."""
    import scipy.io  # here: scipy's loader only where MATLAB files are read

    if not path.is_file():
        raise GraphhashError(f"{path}: not found ({what})")
    if path.stat().st_size == 0:
        raise GraphhashError(f"{path}: an empty file ({what})")
    try:
        return scipy.io.loadmat(path)
    except (OSError, ValueError, scipy.io.matlab.MatReadError) as exc:
        raise GraphhashError(f"{path}: not a MATLAB file scipy can read ({exc})") from None


def _mat_variable(path: Path, name: str, what: str) -> np.ndarray:
    mat = _load_mat(path, what)
    if name not in mat:
        raise GraphhashError(f"{path}: no variable {name} ({what})")
    return mat[name]


def read_mirflickr_tags(folder: str | Path) -> PairedSet:
    """MIRFlickr-25K's tags (one modality) and multi-label concepts in ``folder``; no split."""
    folder = Path(folder)
    (tags_file, tags_name), (labels_file, labels_name) = MIRFLICKR_FILES.values()
    tags = _finite(_mat_variable(folder / tags_file, tags_name, "MIRFlickr-25K's tags"),
                   f"{folder / tags_file}: {tags_name}")  # fmt: skip
    labels = _finite(_mat_variable(folder / labels_file, labels_name, "MIRFlickr-25K's labels"),
                     f"{folder / labels_file}: {labels_name}")  # fmt: skip
    if labels.ndim != 2 or len(labels) != len(tags) or not np.isin(labels, (0, 1)).all():
        raise GraphhashError(f"{folder / labels_file}: {labels_name} must be a 0/1 matrix with a row for each of "
                             f"the {len(tags)} items of {tags_file}, found shape {labels.shape}")  # fmt: skip
    unlabelled = np.flatnonzero(~labels.any(axis=1))
    if len(unlabelled):  # relevant to nothing: such a query would count 0 whatever the method
        raise GraphhashError(f"{folder / labels_file}: {labels_name}: {len(unlabelled)} items have no label (the "
                             f"first: row {unlabelled[0]}); every item needs at least one")  # fmt: skip
    digits = len(str(len(tags) - 1))
    return PairedSet({"tags": tags}, labels.astype(bool), [f"mirflickr/{i:0{digits}d}" for i in range(len(tags))],
                     None, [f"label-{c:02d}" for c in range(labels.shape[1])])  # fmt: skip


def read_wiki(folder: str | Path) -> PairedSet:
    """The Wiki dataset in ``folder``: train pairs (database and training set), then test pairs (queries)."""
    folder = Path(folder)
    path = folder / WIKI_FEATURES
    mat = _load_mat(path, "the Wiki dataset's features, ../shared/datasets/wiki")
    parts = {part: _wiki_list(folder / name) for part, name in WIKI_LISTS.items()}
    views = {}
    for modality, prefix in WIKI_VIEWS.items():
        blocks = []
        for part, suffix in (("train", "tr"), ("test", "te")):
            name = f"{prefix}_{suffix}"
            if name not in mat:
                raise GraphhashError(f"{path}: no variable {name} (the {modality} features of the {part} pairs)")
            block = _finite(mat[name], f"{path}: {name}")
            if len(block) != len(parts[part][0]):
                raise GraphhashError(f"{path}: {name} has {len(block)} rows, but {WIKI_LISTS[part]} lists "
                                     f"{len(parts[part][0])} pairs")  # fmt: skip
            if blocks and block.shape[1] != blocks[0].shape[1]:
                raise GraphhashError(f"{path}: {name} has {block.shape[1]} columns, but {prefix}_tr has "
                                     f"{blocks[0].shape[1]}: both parts' {modality} features must match")  # fmt: skip
            blocks.append(block)
        views[modality] = np.concatenate(blocks)
    ids = parts["train"][0] + parts["test"][0]
    labels = np.concatenate([parts["train"][1], parts["test"][1]])
    query = np.arange(len(ids)) >= len(parts["train"][0])
    return PairedSet(views, labels, ids, query, _wiki_categories(folder / WIKI_CATEGORIES))


def _wiki_categories(path: Path) -> list[str]:
    """The ten category names of ``categories.list`` (one per line), or their numbers 1-10 without it."""
    if not path.is_file():
        return [str(number) for number in range(1, 11)]
    names = _text(path).split()
    if len(names) != 10:
        raise GraphhashError(f"{path}: expected the 10 category names, found {len(names)}")
    return names
