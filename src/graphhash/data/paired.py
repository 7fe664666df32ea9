"""Paired, feature-only data for cross-modal hashing (issue 16): two or more named modalities, each a feature
matrix over the same items, with their labels and the dataset's own split.

``PairedSet``: ``views`` {modality: (N, D_m) float64}, row i of every view is item i; ``labels`` (N,) int64 (one
class per item) or (N, L) bool (a 0/1 multi-label matrix: relevance is a shared label), naming ``classes``; ``ids``
(N,) distinct strings; ``query`` (N,) bool, the dataset's test items (the queries; the others are the database and
training set), or None for a dataset with no published split (``prepare`` draws the queries).

``graphhash.data.sources.paired`` serves these as the ``paired``, ``wiki`` and ``mirflickr_tags`` sources of the
pipeline.

Readers keep the files as published (``scipy.io.loadmat`` for MATLAB files) and check them: a missing file, a
modality whose row count or ids differ from the others', or a NaN or infinite feature is one line naming the
file, and nothing is returned.

- ``read_paired(path)``: a user's own paired features (any two or more views of the same items, or one), in a
  folder or in one HDF5 file (``.h5``, ``.hdf5``):

  ==============  =======================================  ==============================================
  folder          HDF5 file (datasets at its root)         what
  ==============  =======================================  ==============================================
  <modality>.npy  <modality>                               (N, D_m) real, finite: row i is item i's features
                                                           in that modality; every ``.npy`` file but
                                                           ``labels.npy`` (every dataset but the four below)
                                                           is one, the modalities in sorted name order
  ids.txt         ids, (N,) strings                        the items' ids, distinct, in the rows' order (one
                                                           per line, UTF-8)
  labels.npy      labels                                   optional: (N,) integer classes 0..C-1, or (N, L)
                                                           0/1 (multi-label); without it the items have no
                                                           labels of their own: (N, 0), no classes
  classes.txt     classes, strings                         optional: the C or L classes' names, one per line
                                                           (without it their numbers, ``0``, ``1``, ...)
  query.txt       query, strings                           optional: the ids of the dataset's own test items,
                                                           one per line: the queries of ``prepare.split:
                                                           auto``; without it ``prepare`` draws them
  ==============  =======================================  ==============================================

  A modality cannot be named ``labels`` (nor, in an HDF5 file, ``ids``, ``classes`` or ``query``). Labels may
  instead come from a labels file over these ids (``prepare.labels``, ``graphhash.data.labels``). A missing
  ``ids``, rows that differ in number from the ids, a repeated id, a matrix that is not 2-d, a NaN or infinite
  feature, labels of another shape, a class number with no name, or a query id that is no item is one line naming
  the file (and the dataset).

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

from graphhash.data.images import load_npy
from graphhash.errors import GraphhashError
from graphhash.files.features import require_finite
from graphhash.files.hdf5 import no_labels

WIKI_FEATURES = "raw_features.mat"
WIKI_LISTS = {"train": "trainset_txt_img_cat.list", "test": "testset_txt_img_cat.list"}
WIKI_VIEWS = {"image": "I", "text": "T"}  # modality -> the .mat variables' prefix (I_tr, I_te, ...)
WIKI_CATEGORIES = "categories.list"
MIRFLICKR_FILES = {"tags": ("mirflickr25k-yall.mat", "YAll"), "labels": ("mirflickr25k-lall.mat", "LAll")}
PAIRED_FILES = {"ids": "ids.txt", "labels": "labels.npy", "classes": "classes.txt", "query": "query.txt"}
HDF5_SUFFIXES = (".h5", ".hdf5")


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


@dataclass(frozen=True)
class _Strings:
    """A list of strings of the paired layout (``ids.txt``, or an HDF5 file's ``ids``) and where it is."""

    values: list[str]
    where: str
    lines: bool  # a text file (1-based lines) rather than a dataset (0-based rows)

    def at(self, index: int) -> str:
        return f"line {index + 1}" if self.lines else f"row {index}"


def read_paired(path: str | Path) -> PairedSet:
    """The paired layout at ``path``, a folder or an HDF5 file (the module's text), checked."""
    path = Path(path)
    if path.is_dir():
        found = _paired_folder(path)
    elif path.is_file() and path.suffix.lower() in HDF5_SUFFIXES:
        found = _paired_hdf5(path)
    else:
        raise GraphhashError(f"prepare.path: {str(path)!r} is neither a folder of <modality>.npy files nor an HDF5 "
                             f"file ({', '.join(HDF5_SUFFIXES)})")  # fmt: skip
    views, ids, labels, classes, query = found
    return _paired_set(views, ids, labels, classes, query)


def _paired_folder(folder: Path) -> tuple:
    """The parts of the folder layout: {modality: (matrix, where)}, ids, (labels, where) and the classes and query
    ids (``_Strings``), the optional ones None."""
    modalities = sorted(p for p in folder.glob("*.npy") if p.is_file() and not p.name.startswith(".")
                        and p.name != PAIRED_FILES["labels"])  # fmt: skip
    if not modalities:
        raise GraphhashError(f"{folder}: no <modality>.npy files (one (N, D) feature matrix per modality)")
    ids_path = folder / PAIRED_FILES["ids"]
    if not ids_path.is_file():
        raise GraphhashError(f"{ids_path}: not found (the items' ids, one per line, in the rows' order)")
    views = {p.stem: (load_npy(p, str(p)), str(p)) for p in modalities}
    labels_path, classes_path, query_path = (folder / PAIRED_FILES[name] for name in ("labels", "classes", "query"))
    labels = (load_npy(labels_path, str(labels_path)), str(labels_path)) if labels_path.is_file() else None
    classes = _text_lines(classes_path) if classes_path.is_file() else None
    query = _text_lines(query_path) if query_path.is_file() else None
    return views, _text_lines(ids_path), labels, classes, query


def _text_lines(path: Path) -> _Strings:
    """The lines of a text file of the layout, stripped; an empty line (but at the end) is one line naming it."""
    lines = [line.strip() for line in _text(path).rstrip().splitlines()]
    if "" in lines:
        raise GraphhashError(f"{path}: line {lines.index('') + 1} is empty (one entry per line)")
    return _Strings(lines, str(path), lines=True)


def _paired_hdf5(path: Path) -> tuple:
    """The parts of the HDF5 layout, as ``_paired_folder``'s."""
    import h5py  # here: the Wiki and MIRFlickr readers need no HDF5

    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise GraphhashError(f"{path}: not an HDF5 file h5py can read ({str(exc).splitlines()[0]})") from None
    with f:
        for name, member in f.items():
            if not isinstance(member, h5py.Dataset):
                raise GraphhashError(f"{path}: {name} is not a dataset (the layout's datasets are at the file's root)")
        if "ids" not in f:
            raise GraphhashError(f"{path}: no dataset ids (the items' ids, (N,) strings, in the rows' order)")
        views = {name: (f[name][()], f"{path}: {name}") for name in sorted(f) if name not in PAIRED_FILES}
        if not views:
            raise GraphhashError(f"{path}: no feature datasets (one (N, D) matrix per modality, named by it)")
        labels = (f["labels"][()], f"{path}: labels") if "labels" in f else None
        classes, query = (_hdf5_strings(f[name], f"{path}: {name}") if name in f else None
                          for name in ("classes", "query"))  # fmt: skip
        return views, _hdf5_strings(f["ids"], f"{path}: ids"), labels, classes, query


def _hdf5_strings(dataset, where: str) -> _Strings:
    import h5py

    if dataset.ndim != 1 or h5py.check_string_dtype(dataset.dtype) is None:
        raise GraphhashError(f"{where}: expected a 1-d dataset of strings, found {dataset.dtype} {dataset.shape}")
    try:
        values = [str(value).strip() for value in dataset.asstr("utf-8")[()]]
    except UnicodeDecodeError as exc:
        raise GraphhashError(f"{where}: not UTF-8 text ({exc.reason})") from None
    if "" in values:
        raise GraphhashError(f"{where}: row {values.index('')} is empty")
    return _Strings(values, where, lines=False)


def _paired_set(views: dict[str, tuple[np.ndarray, str]], ids: _Strings, labels: tuple[np.ndarray, str] | None,
                classes: _Strings | None, query: _Strings | None) -> PairedSet:  # fmt: skip
    """The layout's parts checked against each other (the module's text) as a ``PairedSet``."""
    n = len(ids.values)
    seen: dict[str, int] = {}
    for index, item_id in enumerate(ids.values):
        if item_id in seen:
            raise GraphhashError(f"{ids.where}: {item_id!r} is listed twice ({ids.at(seen[item_id])} and "
                                 f"{ids.at(index)})")  # fmt: skip
        seen[item_id] = index
    matrices = {}
    for modality, (x, where) in views.items():
        x = _finite(x, where)
        if len(x) != n or x.shape[1] == 0:
            raise GraphhashError(f"{where}: {x.shape[0]} rows of {x.shape[1]} features, but {ids.where} lists {n} "
                                 "ids; every modality needs a row of at least one feature per id")  # fmt: skip
        matrices[modality] = x
    if labels is None:
        if classes is not None:
            raise GraphhashError(f"{classes.where}: names the classes of labels, but there are none (no "
                                 f"{PAIRED_FILES['labels']}, or labels dataset)")  # fmt: skip
        found, names = no_labels(n), []
    else:
        found, names = _paired_labels(*labels, n, ids.where, classes)
    native = None
    if query is not None:
        if not query.values:
            raise GraphhashError(f"{query.where}: lists no ids (the dataset's own queries; leave it out to draw them)")
        native = np.zeros(n, dtype=bool)
        for index, item_id in enumerate(query.values):
            if item_id not in seen:
                raise GraphhashError(f"{query.where}: {query.at(index)}, {item_id!r}, is not an id of {ids.where}")
            if native[seen[item_id]]:
                raise GraphhashError(f"{query.where}: {item_id!r} is listed twice")
            native[seen[item_id]] = True
    return PairedSet(matrices, found, list(ids.values), native, names)


def _paired_labels(labels: np.ndarray, where: str, n: int, ids_where: str,
                   classes: _Strings | None) -> tuple[np.ndarray, list[str]]:  # fmt: skip
    """(N,) int64 classes or an (N, L) bool matrix, and the classes' names, or one line naming ``where``."""
    labels = np.asarray(labels)
    single = labels.ndim == 1 and labels.dtype.kind in "iu" and (labels >= 0).all()
    multi = labels.ndim == 2 and labels.dtype.kind in "biuf" and np.isin(labels, (0, 1)).all()
    if not (single or multi):
        raise GraphhashError(f"{where}: expected (N,) class numbers 0, 1, ... or an (N, L) 0/1 matrix, found "
                             f"{labels.dtype} {labels.shape}")  # fmt: skip
    if len(labels) != n:
        raise GraphhashError(f"{where}: {len(labels)} rows, but {ids_where} lists {n} ids")
    count = int(labels.max(initial=-1)) + 1 if single else labels.shape[1]
    if classes is None:
        names = [str(c) for c in range(count)]
    else:
        names = classes.values
        if len(set(names)) != len(names):
            raise GraphhashError(f"{classes.where}: {len(names) - len(set(names))} class names are listed twice")
        if (len(names) < count) if single else (len(names) != count):
            needed = f"class {count - 1}" if single else f"{count} columns"
            raise GraphhashError(f"{classes.where}: names {len(names)} classes, but {where} has {needed}")
    return (labels.astype(np.int64), names) if single else (labels.astype(bool), names)
