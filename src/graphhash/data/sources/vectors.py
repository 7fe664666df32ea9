"""The vector sources, feature-only: ``npy`` (one ``.npy`` vector per item, one folder per class) and
``synthetic`` (a labelled Gaussian mixture made on demand from ``prepare.synthetic``)."""

from __future__ import annotations

import json
import math
from typing import Annotated, Any

import numpy as np
from PIL import Image
from pydantic import Field, ValidationError

from graphhash.data.images import BadItemError, load_npy
from graphhash.data.sources.base import Listing, Source
from graphhash.data.sources.images import FolderSource
from graphhash.errors import GraphhashError
from graphhash.hyperparameters import Configurable, HyperparameterError, checked, declared
from graphhash.runtime import memory_shortfall

NPY_EXTENSIONS = (".npy",)


class NpySource(FolderSource):
    """Pre-embedded vectors: ``<path>/<class>/*.npy``, each of shape (D,) or (1, D), finite."""

    extensions = NPY_EXTENSIONS
    holds_vectors = True

    def image(self, item_id: str) -> Image.Image:
        raise NotImplementedError("source 'npy' holds vectors, not images")

    def vector(self, item_id: str) -> np.ndarray:
        where = self.where(item_id)
        array = load_npy(self.read(item_id), where)
        if array.ndim == 2 and array.shape[0] == 1:
            array = array[0]
        if array.ndim != 1 or not np.issubdtype(array.dtype, np.number) or array.size == 0:
            raise BadItemError(f"{where}: expected a numeric vector of shape (D,) or (1, D), got {array.dtype} "
                               f"{array.shape}")  # fmt: skip
        if not np.isfinite(array).all():
            raise BadItemError(f"{where}: the vector holds {int((~np.isfinite(array)).sum())} NaN or infinite values")
        return array.astype(np.float32)


# Rows of a synthetic source made together, by one generator: 64, the default extract.batch_size, so that
# DataLoader workers, which read whole batches, each make blocks of their own rather than all the same ones.
SYNTHETIC_BLOCK = 64
LISTED_ITEM_BYTES = 100  # about what an item's id (a str), its place in the listing and its label take
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
        self.check(items=items, dimension=dimension, classes=classes)
        self.items, self.dimension, self.classes, self.seed = items, dimension, classes, seed
        self.noise = float(noise)  # noise=1 and noise=1.0 are one mixture, with one address
        self.rank = min(SYNTHETIC_RANK, dimension)
        self._digits = len(str(items - 1)), len(str(classes - 1))  # zero-padding of item and class numbers
        self._last_block: tuple[int, np.ndarray] | None = None  # (b, its rows)
        self._last_classes: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # the last block's: c -> (mu_c, B_c)

    @classmethod
    def check(cls, *, items: int, dimension: int, classes: int, **others: Any) -> None:
        if classes > items:
            raise HyperparameterError("classes", f"must be <= items ({classes:,} > {items:,})")
        what = f"{items:,} items of {dimension:,} dimensions (their float32 rows, which later stages hold, and ids)"
        reason = memory_shortfall(items * (4 * dimension + LISTED_ITEM_BYTES), what)
        if reason:
            raise HyperparameterError("items", reason)

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
