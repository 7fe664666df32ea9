"""Data sources: where the items come from, their labels, and how to read one item.

Seven sources, chosen by ``prepare.source`` from ``SOURCES``:

- ``digits``: scikit-learn's bundled handwritten digits (1,797 real 8x8 images, 10 classes).
- ``folder``: an image folder with one sub-folder per class.
- ``cifar10``: the CIFAR-10 JPEG layout (``cifar10/{train,test}/<class>/*.jpg``), read from the tar itself
  or from an extracted folder; its own train/test split is the standard retrieval protocol.
- ``npy``: pre-embedded vectors, one folder per class and one ``.npy`` vector per item (the layout of the
  HAGCN public code); these vectors are the features, so no backbone runs.
- ``synthetic``: a labelled Gaussian mixture generated on demand from ``prepare.synthetic`` (items,
  dimension, classes, noise, seed), feature-only like ``npy``: for scale tests of every stage after
  ``extract``. Its path is that sub-section written out (``items=10000,dimension=1280,...``), which the
  manifest records, so later stages reopen the same mixture.
- ``wiki`` and ``mirflickr_tags``: paired, feature-only data (``graphhash.data.paired``): the Wikipedia image-text
  pairs (two modalities, ``image`` and ``text``; its test pairs are the queries) and MIRFlickr-25K's tags (one
  modality, ``tags``, with 24 labels per item as a multi-label matrix).

Every item holds one vector or image per **modality** (``Source.modalities``, ``image`` for every single-modality
source but MIRFlickr's tags); the features file holds one matrix per modality. **Labels** are one class per item,
(N,) int64, or a 0/1 matrix (N, L) of bool for multi-label data, where relevance is a shared label.

Item ids are '/'-separated paths relative to the dataset root, so a tar and its extracted folder give the
same ids. Listings are sorted by id, so they never depend on the order the file system returns. An item
that cannot be read (a dangling symbolic link, a loop, no permission) raises ``BadItemError`` naming it, like
one that cannot be decoded, so ``extract.on_bad_image`` decides for both.
"""

from __future__ import annotations

import io
import json
import math
import os
import tarfile
import tokenize
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from PIL import Image
from pydantic import Field, ValidationError

from graphhash.data.images import IMAGE_EXTENSIONS, BadItemError, decode
from graphhash.data.paired import PairedSet, read_mirflickr_tags, read_wiki
from graphhash.errors import GraphhashError
from graphhash.hyperparameters import Configurable, HyperparameterError, checked, declared

NPY_EXTENSIONS = (".npy",)
NPY_MAGIC = b"\x93NUMPY"


@dataclass(frozen=True)
class Listing:
    """What a source holds: ids sorted, labels (integer classes indexing ``classes``, or a (N, L) bool matrix whose
    columns are the ``classes``), and its own query split."""

    ids: list[str]
    labels: np.ndarray
    classes: list[str]
    native_query: np.ndarray | None  # True for the dataset's own test items; None when it has no split


class Source(ABC):
    """A dataset at ``path``: list it once, then read any item by id (also from DataLoader worker processes)."""

    holds_vectors = False  # True when items are feature vectors rather than images
    reads_path = True  # False when ``prepare.path`` is unused (the data is bundled or generated)
    modalities: tuple[str, ...] = ("image",)  # what each item holds, one vector or image per modality

    @abstractmethod
    def __init__(self, path: str): ...

    @classmethod
    def open(cls, path: str) -> Source:
        """The source at ``path``, the path the manifest records (a synthetic source reads its mixture from it)."""
        return cls(path)

    @abstractmethod
    def listing(self) -> Listing: ...

    @abstractmethod
    def read(self, item_id: str) -> bytes:
        """The item's raw bytes (what the manifest's content digest covers); BadItemError when unreadable."""

    @abstractmethod
    def where(self, item_id: str) -> str:
        """A human-readable location of the item, for error messages."""

    def image(self, item_id: str) -> Image.Image:
        return decode(self.read(item_id), self.where(item_id))

    def vector(self, item_id: str) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} holds images, not vectors")

    def vectors(self, item_id: str) -> tuple[np.ndarray, ...]:
        """The item's float32 vector in each modality, in ``modalities`` order (a vector source's)."""
        return (self.vector(item_id),)


# -- storage: files under a folder, or members of a tar -------------------------------------------------


def _is_hidden(path: str) -> bool:
    return any(part.startswith(".") for part in path.split("/"))


class FolderStore:
    """Files under ``root``, addressed by '/'-separated relative paths."""

    def __init__(self, root: Path):
        self.root = root

    def child(self, name: str) -> FolderStore:
        return FolderStore(self.root / name)

    def subdirs(self, rel: str) -> list[str]:
        base = self.root / rel
        return sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))

    def files(self, rel: str) -> list[str]:
        """Every non-hidden file below ``rel`` (recursively), relative to the root."""
        found = []
        for dirpath, dirnames, filenames in os.walk(self.root / rel):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            rel_dir = Path(dirpath).relative_to(self.root).as_posix()
            found += [f"{rel_dir}/{f}" for f in filenames if not f.startswith(".")]
        return found

    def read(self, rel: str) -> bytes:
        try:
            return (self.root / rel).read_bytes()
        except OSError as exc:  # a dangling link, a link loop, a folder named like a file, no permission
            raise BadItemError(f"{self.where(rel)}: cannot read: {exc.strerror or type(exc).__name__}") from None

    def where(self, rel: str) -> str:
        return str(self.root / rel)


class TarStore:
    """Members of an uncompressed tar, read by offset without extracting; paths relative to ``prefix``."""

    def __init__(self, tar_path: Path, prefix: str = "", index: tuple[dict, set] | None = None):
        self.tar_path = tar_path
        self.prefix = prefix
        # full member name -> (data offset, size), and the set of folder names (explicit or implied)
        self._files, self._dirs = index if index is not None else self._index(tar_path)

    @staticmethod
    def _index(tar_path: Path) -> tuple[dict[str, tuple[int, int]], set[str]]:
        """Every member's data offset and size, read from the plain headers (``_plain_members``) or, for any
        other tar (long names, pax headers, links), by the ``tarfile`` module."""
        files, dirs = {}, set()
        try:
            members = _plain_members(tar_path)
            if members is None:
                with tarfile.open(tar_path, "r:") as tar:
                    members = [(m.name, m.isfile(), m.isdir(), m.offset_data, m.size) for m in tar]
        except (OSError, tarfile.TarError) as exc:
            raise GraphhashError(f"{tar_path}: cannot read tar (an uncompressed tar is needed): {exc}") from exc
        for name, is_file, is_dir, offset, size in members:
            name = name.removeprefix("./").rstrip("/")  # `tar cf x.tar ./cifar10` names start with ./
            if is_file:
                files[name] = (offset, size)
                folder = name.rpartition("/")[0]
            else:
                folder = name if is_dir else ""
            while folder and folder not in dirs:  # a folder and its parents (string ops: 60k members)
                dirs.add(folder)
                folder = folder.rpartition("/")[0]
        return files, dirs

    def child(self, name: str) -> TarStore:
        return TarStore(self.tar_path, f"{self.prefix}{name}/", (self._files, self._dirs))

    def subdirs(self, rel: str) -> list[str]:
        base = f"{self.prefix}{rel}/" if rel else self.prefix
        names = {d[len(base) :].split("/")[0] for d in self._dirs if d.startswith(base)}
        return sorted(n for n in names if n and not n.startswith("."))

    def files(self, rel: str) -> list[str]:
        base = f"{self.prefix}{rel}/"
        return [f[len(self.prefix) :] for f in self._files if f.startswith(base) and not _is_hidden(f)]

    def read(self, rel: str) -> bytes:
        offset, size = self._files[self.prefix + rel]
        with open(self.tar_path, "rb") as f:
            f.seek(offset)
            return f.read(size)

    def where(self, rel: str) -> str:
        return f"{self.tar_path}:{self.prefix}{rel}"


TAR_BLOCK = 512
_PLAIN_FILE, _PLAIN_DIR = (b"0", b"\0", b"7"), b"5"
_PAX, _GNU_LONG_NAME = b"x", b"L"  # headers that describe the next member: pax records, a GNU long name


def _plain_members(tar_path: Path) -> list[tuple[str, bool, bool, int, int]] | None:
    """(name, is file, is folder, data offset, size) of every member of a tar of regular files and folders,
    read from its headers: ustar and v7 headers, with pax records (the path and size they set; Python's
    tarfile writes one per member) and GNU long names. None for any other tar (links, global pax headers,
    non-ASCII names, members over 8 GiB, a checksum that does not match), which ``tarfile`` then reads.
    60,000 CIFAR-10 members in 0.4 s, against 1.3 s through ``tarfile``: a fixed cost every ``extract`` of
    the tar pays before its first batch.
    """
    members, pending = [], {}  # pending: what a pax or long-name header says about the next member
    with open(tar_path, "rb") as f:
        offset = 0
        while len(header := f.read(TAR_BLOCK)) == TAR_BLOCK and header.count(0) < TAR_BLOCK:
            stored = header[148:156].split(b"\0")[0].strip()
            kind, size_field = header[156:157], header[124:136]
            if (
                not stored.isdigit()
                or int(stored, 8) != sum(header) - sum(header[148:156]) + 8 * 32  # the checksum field as spaces
                or size_field[0] & 0x80  # a base-256 size: a member over 8 GiB
                or kind not in (*_PLAIN_FILE, _PLAIN_DIR, _PAX, _GNU_LONG_NAME)
            ):
                return None
            size = int(size_field.split(b"\0")[0].strip() or b"0", 8)
            if kind in (_PAX, _GNU_LONG_NAME):
                data = f.read(size)
                if kind == _GNU_LONG_NAME:
                    pending[b"path"] = data.split(b"\0")[0]
                else:
                    try:
                        pending.update(_pax_records(data))
                    except ValueError:  # not records: tarfile says what is wrong
                        return None
            else:
                name = header[:100].split(b"\0")[0]
                if header[257:265] == b"ustar\x0000" and header[345:346] != b"\0":  # POSIX ustar: a name prefix
                    name = header[345:500].split(b"\0")[0] + b"/" + name
                name = pending.pop(b"path", name)
                size = int(pending.pop(b"size", size))
                pending.clear()
                if not name.isascii():
                    return None
                is_dir = kind == _PLAIN_DIR or name.endswith(b"/")
                name = name.rstrip(b"/") if is_dir else name
                members.append((name.decode(), not is_dir, is_dir, offset + TAR_BLOCK, size))
            offset += TAR_BLOCK + -(-size // TAR_BLOCK) * TAR_BLOCK
            f.seek(offset)
    return members


def _pax_records(data: bytes) -> dict[bytes, bytes]:
    """The ``key=value`` records of a pax header's data: ``<length> <key>=<value>\\n`` each, length in bytes."""
    records, pos = {}, 0
    while pos < len(data) and data[pos : pos + 1] != b"\0":
        length = int(data[pos : data.index(b" ", pos)])
        key, _, value = data[data.index(b" ", pos) + 1 : pos + length - 1].partition(b"=")
        records[key] = value
        pos += length
    return records


Store = FolderStore | TarStore


def _class_folders(store: Store, rel: str, extensions: tuple[str, ...]) -> dict[str, list[str]]:
    """Map each class folder under ``rel`` to its sorted files with one of ``extensions``."""
    classes = store.subdirs(rel)
    if not classes:
        raise GraphhashError(f"{store.where(rel)}: no class folders (expected one sub-folder per class)")
    grouped = {}
    for cls in classes:
        cls_rel = f"{rel}/{cls}" if rel else cls
        files = sorted(f for f in store.files(cls_rel) if f.lower().endswith(extensions))
        if not files:
            raise GraphhashError(f"{store.where(cls_rel)}: class folder has no files ending in {', '.join(extensions)}")
        grouped[cls] = files
    return grouped


def _listing(grouped: dict[str, list[str]], native_query: set[str] | None = None) -> Listing:
    classes = sorted(grouped)
    pairs = sorted((f, label) for label, cls in enumerate(classes) for f in grouped[cls])
    ids = [f for f, _ in pairs]
    labels = np.array([label for _, label in pairs], dtype=np.int64)
    query = None if native_query is None else np.array([f in native_query for f in ids], dtype=bool)
    return Listing(ids=ids, labels=labels, classes=classes, native_query=query)


# -- the five sources -----------------------------------------------------------------------------------


class DigitsSource(Source):
    """scikit-learn's bundled digits; grey levels 0..16 become dark ink on white paper (``path`` is unused)."""

    reads_path = False

    def __init__(self, path: str = "") -> None:
        from sklearn.datasets import load_digits

        digits = load_digits()
        self._images = digits.images.astype(np.uint8)  # values 0..16, exact in uint8
        self._labels = digits.target.astype(np.int64)

    def listing(self) -> Listing:
        ids = [f"digits/{i:04d}" for i in range(len(self._labels))]
        return Listing(ids=ids, labels=self._labels, classes=[str(c) for c in range(10)], native_query=None)

    def _index(self, item_id: str) -> int:
        return int(item_id.split("/")[1])

    def read(self, item_id: str) -> bytes:
        return self._images[self._index(item_id)].tobytes()

    def where(self, item_id: str) -> str:
        return f"sklearn digits #{self._index(item_id)}"

    def image(self, item_id: str) -> Image.Image:
        ink = self._images[self._index(item_id)].astype(np.float64) / 16.0
        grey = np.round(255.0 * (1.0 - ink)).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")


class FolderSource(Source):
    """An image folder: ``<path>/<class>/**/*.{jpg,jpeg,png,bmp,webp}``."""

    extensions = IMAGE_EXTENSIONS

    def __init__(self, path: str):
        root = Path(path)
        if not root.is_dir():
            raise GraphhashError(f"prepare.path: {path!r} is not a folder")
        self.store = FolderStore(root)

    def listing(self) -> Listing:
        return _listing(_class_folders(self.store, "", self.extensions))

    def read(self, item_id: str) -> bytes:
        return self.store.read(item_id)

    def where(self, item_id: str) -> str:
        return self.store.where(item_id)


class NpySource(FolderSource):
    """Pre-embedded vectors: ``<path>/<class>/*.npy``, each of shape (D,) or (1, D), finite."""

    extensions = NPY_EXTENSIONS
    holds_vectors = True

    def image(self, item_id: str) -> Image.Image:
        raise NotImplementedError("source 'npy' holds vectors, not images")

    def vector(self, item_id: str) -> np.ndarray:
        where, data = self.where(item_id), self.read(item_id)
        if not data.startswith(NPY_MAGIC):
            raise BadItemError(f"{where}: not a .npy array (no NumPy header)")
        try:
            array = np.load(io.BytesIO(data), allow_pickle=False)
        except (OSError, ValueError, EOFError, tokenize.TokenError) as exc:  # TokenError: a garbled v1 header
            reason = "it holds Python objects" if "allow_pickle" in str(exc) else "damaged header or data"
            raise BadItemError(f"{where}: cannot read the .npy array: {reason}") from None
        if array.ndim == 2 and array.shape[0] == 1:
            array = array[0]
        if array.ndim != 1 or not np.issubdtype(array.dtype, np.number) or array.size == 0:
            raise BadItemError(f"{where}: expected a numeric vector of shape (D,) or (1, D), got {array.dtype} "
                               f"{array.shape}")  # fmt: skip
        if not np.isfinite(array).all():
            raise BadItemError(f"{where}: the vector holds {int((~np.isfinite(array)).sum())} NaN or infinite values")
        return array.astype(np.float32)


class Cifar10Source(Source):
    """CIFAR-10 as JPEG files: ``cifar10/{train,test}/<class>/*.jpg``, from the tar or an extracted folder."""

    def __init__(self, path: str):
        p = Path(path)
        if p.is_file():
            if not tarfile.is_tarfile(p):
                raise GraphhashError(f"prepare.path: {path!r} is a file but not a tar")
            self.store: Store = TarStore(p)
        elif p.is_dir():
            self.store = FolderStore(p)
        else:
            raise GraphhashError(f"prepare.path: {path!r} is neither the CIFAR-10 tar nor a folder")
        if "cifar10" in self.store.subdirs(""):
            self.store = self.store.child("cifar10")
        missing = [s for s in ("train", "test") if s not in self.store.subdirs("")]
        if missing:
            where = self.store.where("")
            raise GraphhashError(f"{where}: not the CIFAR-10 layout: no {' or '.join(missing)} folder")

    def listing(self) -> Listing:
        train = _class_folders(self.store, "train", IMAGE_EXTENSIONS)
        test = _class_folders(self.store, "test", IMAGE_EXTENSIONS)
        if sorted(train) != sorted(test):
            raise GraphhashError(f"{self.store.where('')}: train and test hold different class folders")
        grouped = {cls: train[cls] + test[cls] for cls in train}
        return _listing(grouped, native_query={f for files in test.values() for f in files})

    def read(self, item_id: str) -> bytes:
        return self.store.read(item_id)

    def where(self, item_id: str) -> str:
        return self.store.where(item_id)


# Rows of a synthetic source made together, by one generator: 64, the default extract.batch_size, so that
# DataLoader workers, which read whole batches, each make blocks of their own rather than all the same ones.
SYNTHETIC_BLOCK = 64
SYNTHETIC_RANK = 16  # the dimension of each class's subspace (at most D)
CLASS_STREAM, BLOCK_STREAM = 0, 1  # the seeds' second word: a class's parameters, or a block of rows


class SyntheticSource(Source, Configurable):
    """A labelled Gaussian mixture made on demand (``prepare.synthetic``): N = ``items`` vectors in D =
    ``dimension`` dimensions, in C = ``classes`` classes; the same vectors for the same hyperparameters,
    whatever is read and in whatever order.

    Class c has a centre mu_c ~ N(0, I_D) and a basis B_c, an r x D matrix (r = min(16, D)) of independent
    N(0, 1/r) entries. Item i (0 <= i < N) is in class c = floor(i C / N), so classes are contiguous runs of
    floor(N / C) or ceil(N / C) items, and it is

        x_i = mu_c + z_i B_c + sigma e_i,    z_i ~ N(0, I_r),  e_i ~ N(0, I_D),  sigma = ``noise``:

    its class's centre, a spread inside the class's own r-dimensional subspace (features of real images lie
    near low-dimensional sets), and isotropic noise. Per coordinate these have variances 1, 1 and sigma^2, so
    in many dimensions, by cosine similarity:

    - an item's cosine with its own centre is about 1 / sqrt(2 + sigma^2), with another class's centre
      0 +- 1 / sqrt(D): the nearest centre finds the class while sqrt(D / (2 + sigma^2)) is well above
      sqrt(2 ln C), the typical largest of C - 1 standard normals;
    - two items of one class (sharing their centre) have a cosine of about 1 / (2 + sigma^2), two of different
      classes 0 +- 1 / sqrt(D): retrieval by cosine gets hard as sqrt(D) / (2 + sigma^2) comes down to 1.

    sigma is the difficulty. Measured in 1280 dimensions with 100 classes (20,000 items): the nearest centre
    finds the class of 100% of the items at sigma = 0.5, 99.99% at 5, 83% at 10 and 25% at 20 (chance: 1%);
    an item's 9 nearest neighbours by cosine are all of its class at sigma = 0.5 (the default, the mixture
    of ``bench/neighbours.py``, where their mean cosine is 0.67) and 99.9% of them at 3, 42% at 5.

    Ids are ``class-<c>/<i>``, zero-padded so that sorted ids are in the order of i. Rows are made in blocks
    of 64 consecutive items, block b by its own generator, seeded by (seed, 1, b), and class c's centre and
    basis by one seeded by (seed, 0, c), so that no item depends on what was read before it. Only the last
    block (and its classes' centres and bases) is kept, so reading ids in order makes each block once and
    holds no more than 64 vectors; ``rows`` makes a range of items into one array (a benchmark's whole
    matrix). Listing makes no vector: ids and labels follow from i. The spread z_i B_c is summed in
    float64 by ``np.einsum`` (no BLAS: no threads to contend for the cores, and one order of summation), then
    rounded to float32, so other machines almost surely give the same bits.

    Args:
        items: N, how many vectors
        dimension: D, the length of every vector
        classes: C, at most items; item i is in class floor(i C / N), so classes are balanced
        noise: sigma, the difficulty: the noise's standard deviation per coordinate, where centre and spread
            have 1 (an item's cosine with its own centre: about 1 / sqrt(2 + sigma^2))
        seed: the centres, the subspaces and the items
    """

    holds_vectors = True
    reads_path = False  # prepare.path: the mixture comes from prepare.synthetic

    @checked
    def __init__(
        self,
        *,
        items: Annotated[int, Field(ge=1)] = 10_000,
        dimension: Annotated[int, Field(ge=1, le=65_536)] = 1280,
        classes: Annotated[int, Field(ge=1)] = 100,
        noise: Annotated[float, Field(ge=0.0)] = 0.5,
        seed: Annotated[int, Field(ge=0)] = 0,
    ):
        self.check(items=items, classes=classes)
        self.items, self.dimension, self.classes, self.seed = items, dimension, classes, seed
        self.noise = float(noise)  # noise=1 and noise=1.0 are one mixture, with one address
        self.rank = min(SYNTHETIC_RANK, dimension)
        self._digits = len(str(items - 1)), len(str(classes - 1))  # zero-padding of item and class numbers
        self._last_block: tuple[int, np.ndarray] | None = None  # (b, its rows)
        self._last_classes: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # the last block's: c -> (mu_c, B_c)

    @classmethod
    def check(cls, *, items: int, classes: int, **others: Any) -> None:
        if classes > items:
            raise HyperparameterError("classes", f"must be <= items ({classes:,} > {items:,})")

    @property
    def address(self) -> str:
        """The hyperparameters as one line, ``items=10000,dimension=1280,classes=100,noise=0.5,seed=0``: the path
        the manifest records, from which ``open`` makes the same mixture."""
        return ",".join(f"{key}={json.dumps(getattr(self, key))}" for key in declared(SyntheticSource))

    @classmethod
    def open(cls, path: str) -> SyntheticSource:
        """The mixture written as ``path`` (``address``); a key left out takes its default."""
        values = {}
        for pair in filter(None, path.split(",")):
            key, _, text = pair.partition("=")
            try:
                values[key] = json.loads(text)
            except ValueError:
                raise GraphhashError(f"synthetic source {path!r}: {pair!r} is not key=number") from None
        try:
            return cls(**values)
        except ValidationError as exc:
            reason = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        except HyperparameterError as exc:
            reason = str(exc)
        raise GraphhashError(f"synthetic source {path!r}: {reason}")

    def _first(self, c: int) -> int:
        """The first item of class c: ceil(c N / C) (class C's is N)."""
        return -(-c * self.items // self.classes)

    def _class_name(self, c: int) -> str:
        return f"class-{c:0{self._digits[1]}d}"

    def _id(self, i: int) -> str:
        return f"{self._class_name(i * self.classes // self.items)}/{i:0{self._digits[0]}d}"

    def listing(self) -> Listing:
        classes = [self._class_name(c) for c in range(self.classes)]
        ids, width = [], self._digits[0]
        for c, name in enumerate(classes):  # a class at a time: one f-string per item (1,000,000 in about 0.5 s)
            ids += [f"{name}/{i:0{width}d}" for i in range(self._first(c), self._first(c + 1))]
        labels = np.arange(self.items, dtype=np.int64) * self.classes // self.items
        return Listing(ids=ids, labels=labels, classes=classes, native_query=None)

    def _row(self, item_id: str) -> int:
        """Item ``item_id``'s i; BadItemError when the mixture has no such item."""
        try:
            i = int(item_id.rpartition("/")[2])
        except ValueError:
            i = -1
        if not 0 <= i < self.items or self._id(i) != item_id:
            raise BadItemError(f"{self.where(item_id)}: no such item in this mixture")
        return i

    def where(self, item_id: str) -> str:
        return f"synthetic {self.address}: {item_id}"

    def read(self, item_id: str) -> bytes:
        """The vector's float32 bytes, so the manifest's digest changes if the generation ever does."""
        return self.vector(item_id).tobytes()

    def image(self, item_id: str) -> Image.Image:
        raise NotImplementedError("source 'synthetic' holds vectors, not images")

    def vector(self, item_id: str) -> np.ndarray:
        """Item ``item_id``, a float32 (D,) vector, from the last block made when it holds the item."""
        i = self._row(item_id)
        b = i // SYNTHETIC_BLOCK
        if self._last_block is None or self._last_block[0] != b:
            self._last_block = b, self._block(b)
        return self._last_block[1][i - b * SYNTHETIC_BLOCK].copy()

    def rows(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Items ``start`` to ``stop`` - 1 (all by default) as one float32 (stop - start, D) array: the vectors
        of their ids, in order."""
        stop = self.items if stop is None else stop
        if not 0 <= start <= stop <= self.items:
            raise ValueError(f"rows {start}:{stop} are not within the mixture's {self.items} items")
        out = np.empty((stop - start, self.dimension), dtype=np.float32)
        for b in range(start // SYNTHETIC_BLOCK, -(-stop // SYNTHETIC_BLOCK)):
            first = b * SYNTHETIC_BLOCK
            lo, hi = max(first, start), min(first + SYNTHETIC_BLOCK, stop)
            out[lo - start : hi - start] = self._block(b)[lo - first : hi - first]
        return out

    def _generator(self, stream: int, index: int) -> np.random.Generator:
        """The generator of class ``index`` or block ``index`` (SFC64: twice as fast as PCG64 at normals)."""
        return np.random.Generator(np.random.SFC64(np.random.SeedSequence([self.seed, stream, index])))

    def _class(self, c: int) -> tuple[np.ndarray, np.ndarray]:
        """Class c's centre mu_c, float32 (D,), and basis B_c, float64 (r, D) with N(0, 1/r) entries."""
        rng = self._generator(CLASS_STREAM, c)
        centre = rng.standard_normal(self.dimension, dtype=np.float32)
        basis = rng.standard_normal((self.rank, self.dimension), dtype=np.float32).astype(np.float64)
        return centre, basis / math.sqrt(self.rank)

    def _block(self, b: int) -> np.ndarray:
        """Block b's rows, items 64 b to 64 b + 63: x_i = mu_c + z_i B_c + sigma e_i, float32 (rows, D)."""
        start, stop = b * SYNTHETIC_BLOCK, min((b + 1) * SYNTHETIC_BLOCK, self.items)
        rng = self._generator(BLOCK_STREAM, b)
        spread = rng.standard_normal((stop - start, self.rank), dtype=np.float32).astype(np.float64)  # z_i
        rows = rng.standard_normal((stop - start, self.dimension), dtype=np.float32)  # e_i
        rows *= self.noise
        present = range(start * self.classes // self.items, (stop - 1) * self.classes // self.items + 1)
        known = self._last_classes  # a class running on from the last block is not made again
        self._last_classes = {c: known[c] if c in known else self._class(c) for c in present}
        for c, (centre, basis) in self._last_classes.items():
            lo, hi = max(self._first(c), start) - start, min(self._first(c + 1), stop) - start
            rows[lo:hi] += centre
            rows[lo:hi] += np.einsum("ik,kd->id", spread[lo:hi], basis).astype(np.float32)
        return rows


class PairedSource(Source):
    """Feature-only data of one or more named modalities, read whole by a ``graphhash.data.paired`` reader from the
    folder ``path``: every item is a row of each modality's matrix. An item's bytes (what the manifest's digest
    covers) are its rows in every modality, as float64, then its label."""

    holds_vectors = True
    name: str = ""  # the source's key in SOURCES, for messages

    def __init__(self, path: str):
        folder = Path(path)
        if not folder.is_dir():
            raise GraphhashError(f"prepare.path: {path!r} is not a folder (the {self.name} dataset's folder)")
        self.folder = folder
        self.data = self.read_paired(folder)
        self.modalities = tuple(self.data.views)
        self._rows = {item_id: row for row, item_id in enumerate(self.data.ids)}

    @staticmethod
    @abstractmethod
    def read_paired(folder: Path) -> PairedSet:
        """The dataset in ``folder``, checked (one-line errors naming the file)."""

    def listing(self) -> Listing:
        order = sorted(range(len(self.data.ids)), key=self.data.ids.__getitem__)
        query = None if self.data.query is None else self.data.query[order]
        return Listing(ids=[self.data.ids[i] for i in order], labels=self.data.labels[order],
                       classes=list(self.data.classes), native_query=query)  # fmt: skip

    def _row(self, item_id: str) -> int:
        if item_id not in self._rows:
            raise BadItemError(f"{self.where(item_id)}: no such item in the dataset")
        return self._rows[item_id]

    def where(self, item_id: str) -> str:
        return f"{self.folder}: item {item_id}"

    def read(self, item_id: str) -> bytes:
        row = self._row(item_id)
        parts = [np.asarray(view[row], dtype=np.float64).tobytes() for view in self.data.views.values()]
        return b"".join([*parts, np.asarray(self.data.labels[row]).astype(np.int64).tobytes()])

    def image(self, item_id: str) -> Image.Image:
        raise NotImplementedError(f"source '{self.name}' holds feature vectors, not images")

    def vectors(self, item_id: str) -> tuple[np.ndarray, ...]:
        row = self._row(item_id)
        return tuple(np.asarray(view[row], dtype=np.float32) for view in self.data.views.values())


class WikiSource(PairedSource):
    """The Wikipedia image-text pairs (``read_wiki``): modalities ``image`` and ``text``, the 693 test pairs the
    queries (``prepare.split: auto``)."""

    name = "wiki"
    read_paired = staticmethod(read_wiki)


class MirflickrTagsSource(PairedSource):
    """MIRFlickr-25K's tags (``read_mirflickr_tags``): one modality, ``tags``, with 24 labels per item; no split of
    its own."""

    name = "mirflickr_tags"
    read_paired = staticmethod(read_mirflickr_tags)


SOURCES: dict[str, type[Source]] = {
    "digits": DigitsSource,
    "folder": FolderSource,
    "cifar10": Cifar10Source,
    "npy": NpySource,
    "synthetic": SyntheticSource,
    "wiki": WikiSource,
    "mirflickr_tags": MirflickrTagsSource,
}


def open_source(name: str, path: str) -> Source:
    """The source ``name`` (a key of ``SOURCES``) reading from ``path`` (ignored by ``digits``; a synthetic
    source's mixture, ``SyntheticSource.address``)."""
    return SOURCES[name].open(path)
