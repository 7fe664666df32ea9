"""A growing database (``graphhash add``, ``graphhash remove``): what an add costs against the bare embed + hash of the
same images, what a remove costs at 1,000,000 items, and search latency before and after adding 100,000 codes.
Writes docs/benchmarks.md's "A growing database" block.

1. **Add throughput.** The digits default run (a scratch project, ``bench/.work/database``: the repository's params
   on digits) and 1,000 photos of ``../shared/datasets/tinyimagenet20.tar`` (64 x 64 JPEGs; the part is skipped,
   saying so, without it). In one process, alternating, ``--rounds`` times: ``Database.add`` of the 1,000 files
   (digests, duplicate checks, embedding, hashing for each of the run's 3 indexes, the batch file, the changes file,
   FAISS adds, the index files), then ``remove`` of them; and the bare work on the same files: read and decode each,
   the run's backbone on batches of ``extract.batch_size``, each of the run's 3 hash networks on the features (with
   their graph inputs). Models are loaded inside both timings. images/s of each, and the ratio (best round of each).
2. **Remove at 1,000,000 items.** Synthetic clustered 64-bit codes (``bench/search.py``'s), an index of each kind
   written as the index stage writes it; what ``graphhash remove`` does per index, timed: read the index file, find
   what the changes leave (``graphhash.database.run.pending``), take the items out, write the file.
3. **Search latency.** flat and ivf over 1,000,000 of those codes, then after ``Database``'s incremental add of
   100,000 more (ivf: into the cells k-means found for the first 1,000,000), and an index rebuilt over all 1,100,000:
   the median latency of single queries (k = 10, 300 queries), and ivf's recall@10 against flat.

    python bench/database.py              # about 10 minutes on 2 cores (the digits run: 3 more the first time)
"""

from __future__ import annotations

import argparse
import statistics
import tarfile
import time
from pathlib import Path

import numpy as np
import yaml
from common import DATASETS, WORK, Project, params, write_report
from search import code_set

from graphhash.data.images import decode
from graphhash.database.changes import Change, net
from graphhash.database.run import Database, pending
from graphhash.files.features import read_features_attrs
from graphhash.files.index import StoredIndex, find_indexes, read_index, write_index
from graphhash.index import build_index
from graphhash.nrdh.encoder import ItemEncoder, RunBackbone, find_hash_network
from graphhash.runtime import resolve_device

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
TAR = DATASETS / "tinyimagenet20.tar"
PHOTOS = WORK / "database-photos"


def photos(count: int) -> list[Path]:
    """``count`` Tiny ImageNet photos as files (extracted once)."""
    if len(list(PHOTOS.glob("*.jpg"))) < count:
        PHOTOS.mkdir(parents=True, exist_ok=True)
        with tarfile.open(TAR) as tar:
            members = sorted((m for m in tar.getmembers() if m.isfile() and m.name.endswith(".jpg")),
                             key=lambda m: m.name)[:count]  # fmt: skip
            for n, member in enumerate(members):
                (PHOTOS / f"{n:05d}.jpg").write_bytes(tar.extractfile(member).read())
    return sorted(PHOTOS.glob("*.jpg"))[:count]


def bare(root: Path, files: list[Path], batch: int) -> float:
    """Seconds to read, decode, embed and hash ``files`` with the run's backbone and every indexed hash network."""
    start = time.perf_counter()
    features = root / "data" / "features.h5"
    backbone = RunBackbone(features, read_features_attrs(features), "default", "", resolve_device("cpu", "device"))
    images = [np.asarray(decode(f.read_bytes(), str(f))) for f in files]
    embedded = np.concatenate([backbone.embed(images[s : s + batch]) for s in range(0, len(images), batch)])
    training = None
    for method, bits, modality in find_indexes(root / "data" / "index"):
        encoder = ItemEncoder.load(find_hash_network(root / "models", method, bits, modality), features,
                                   device="cpu", training=training)  # fmt: skip
        encoder.encode_features(embedded)
        training = encoder.run_training
    return time.perf_counter() - start


def add_throughput(rounds: int, count: int) -> list[str]:
    if not TAR.is_file():
        return [f"1. add throughput: skipped ({TAR} is not here: ../shared/datasets holds it)"]
    project = Project("database")
    project.run("digits-default", params())
    root, files = project.root, photos(count)
    batch = int(yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8"))["extract"]["batch_size"])
    warm = Database(root, device="cpu")
    warm.remove(warm.add(files[:1]).done)  # the database items' digests: read once and kept
    indexes = {key: read_index(folder).count for key, folder in find_indexes(root / "data" / "index").items()}
    adds, bares = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        report = Database(root, device="cpu").add(files)
        adds.append(time.perf_counter() - start)
        assert len(report.done) == count, report.skipped[:3]
        Database(root).remove(report.done)
        bares.append(bare(root, files, batch))
    a, b = min(adds), min(bares)
    lengths = ", ".join(str(bits) for _, bits, _ in sorted(indexes))
    every = f"add {', '.join(f'{x:.2f}' for x in adds)} s; bare {', '.join(f'{x:.2f}' for x in bares)} s"
    return [
        f"1. add throughput: {count:,} Tiny ImageNet photos (64 x 64 JPEG) into the digits default run "
        f"({min(indexes.values()):,} database items, {len(indexes)} indexes: {lengths} bits); best of",
        f"   {rounds} alternating rounds, models loaded inside both timings",
        f"   graphhash add (Database.add)          {a:7.2f} s   {count / a:7.1f} images/s",
        f"   bare decode + embed + hash x {len(indexes)}        {b:7.2f} s   {count / b:7.1f} images/s",
        f"   add / bare                            {a / b:7.2f}x   (every round: {every})",
    ]


def stored_index(kind: str, codes: np.ndarray) -> StoredIndex:
    """An index of ``kind`` over ``codes`` as the index stage builds it (default options)."""
    index = build_index(kind, {})
    built = index.build(codes)
    return StoredIndex(index=built, codes=codes, ids=[f"item/{i:07d}" for i in range(len(codes))],
                       labels=np.full(len(codes), -1, dtype=np.int64), method="nrdh-gcn", bits=64, modality="image",
                       kind=kind, options=index.used(built), model_sha256="0" * 64)  # fmt: skip


def remove_at_scale(items: int) -> list[str]:
    database, _ = code_set("clustered", items, 10)
    lines = [f"2. remove at {items:,} items (clustered 64-bit codes): read the index file + find what leaves + take it "
             "out + write the file; seconds (the file's size)"]  # fmt: skip
    for kind in ("flat", "ivf", "hnsw"):
        folder = WORK / "database-remove" / kind
        start = time.perf_counter()
        write_index(folder, stored_index(kind, database))
        built = time.perf_counter() - start
        size = (folder / "index.h5").stat().st_size / 2**20
        for count in (1, 1000):
            state = net([Change("remove", f"item/{i:07d}") for i in range(0, count * 997, 997)])
            start = time.perf_counter()
            stored = read_index(folder)
            read = time.perf_counter() - start
            gone, _ = pending(stored, state)
            changed = build_index(kind, stored.options).changed(stored, gone, np.zeros((0, 8), np.uint8), [],
                                                                stored.labels[:0], np.zeros(0, np.int64))  # fmt: skip
            write_index(folder.parent / f"{kind}-after", changed)
            total = time.perf_counter() - start
            assert changed.count == items - count
            lines.append(f"   {kind:5s} remove {count:5,}: {total:6.2f} s (reading {read:.2f} s; {size:.0f} MiB; the "
                         f"index built in {built:.0f} s)")  # fmt: skip
    return lines


def latency(kind_index, stored: StoredIndex, queries: np.ndarray) -> float:
    times = []
    for q in queries:
        start = time.perf_counter()
        kind_index.search(stored.index, stored.codes, q[None], 10, stored.removed)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def search_latency(items: int, added: int) -> list[str]:
    everything, queries = code_set("clustered", items + added, 300, seed=1)
    lines = [f"3. search latency, single queries, k = 10, median of {len(queries)} (ms); clustered 64-bit codes; ivf "
             "recall@10 against flat"]  # fmt: skip
    for kind in ("flat", "ivf"):
        kind_index = build_index(kind, {})
        before = stored_index(kind, everything[:items])
        row = {"before": latency(kind_index, before, queries)}
        new = everything[items:]
        grown = kind_index.changed(before, np.zeros(0, np.int64), new, [f"a/{i}" for i in range(added)],
                                   np.full(added, -1), np.arange(added))  # fmt: skip
        row["after"] = latency(kind_index, grown, queries)
        rebuilt = stored_index(kind, everything)
        row["rebuilt"] = latency(kind_index, rebuilt, queries)
        recall = ""
        if kind == "ivf":
            flat = build_index("flat", {})
            exact = flat.search(flat.build(everything), everything, queries, 10)[0]
            found = {name: kind_index.search(s.index, s.codes, queries, 10, s.removed)[0]
                     for name, s in (("after", grown), ("rebuilt", rebuilt))}  # fmt: skip
            recall = "   recall@10: " + ", ".join(
                f"{name} {np.mean([len(set(f) & set(e)) / 10 for f, e in zip(rows, exact, strict=True)]):.3f}"
                for name, rows in found.items())  # fmt: skip
        lines.append(f"   {kind:5s} {items:,}: {row['before']:.2f}   + {added:,} added: {row['after']:.2f}   rebuilt "
                     f"over {items + added:,}: {row['rebuilt']:.2f}{recall}")  # fmt: skip
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--added", type=int, default=100_000)
    args = parser.parse_args()
    lines = ["```", "$ python bench/database.py"]
    lines += add_throughput(args.rounds, args.images)
    lines += remove_at_scale(args.items)
    lines += search_latency(args.items, args.added)
    write_report(DOC, [*lines, "```"], block="database")


if __name__ == "__main__":
    main()
