"""Search speed of the index kinds (``graphhash.index``): flat against bare FAISS, ivf and hnsw against flat.

Everything runs in one process on seeded synthetic 64-bit codes, k = 100. Two code sets:

- ``random``: uniform random codes (distances binomial around 32: no structure, heavy ties at the k-th
  distance);
- ``clustered``: 1,000 random centre codes; each database item and each query is a random centre with every
  bit flipped with probability 0.1 (structure as in trained codes, and heavy ties: two codes of one centre
  differ by Bin(64, 0.18) bits). Smaller databases are prefixes of the 1M one.

Parts:

1. **Flat throughput** at 100k and 1M items, 1 and 2 threads (``faiss.omp_set_num_threads`` and
   ``numba.set_num_threads``): queries/s of our search path (``Flat().search``: FAISS asked for 2k + 1
   candidates, exact re-ranking, ties at the k-th distance completed in database order) against bare FAISS
   (``IndexBinaryFlat.search(queries, k)``) on the same index and queries, and the ratio ours / bare. Also
   checks on a few hundred queries that ours equals ``hamming.top_k`` exactly.
2. **ivf and hnsw at 1M clustered codes**: build seconds, index size (bytes of
   ``faiss.serialize_index_binary``) and the growth of the process's RSS over the build, queries/s and
   recall@100 against exact flat (the fraction of the exact top-100 ids found; ``dist`` is the tie-blind
   variant: the fraction of the exact top-100 distances matched), for ivf nprobe 1, 4, 16, 64, 256 (nlist
   auto, 4 sqrt(n)) and hnsw ef_search 100, 200, 400, 800 (M 32, ef_construction 40).
   Flat's queries/s on the same data is printed with them.
3. **Growth**: build seconds and queries/s of flat, ivf and hnsw at their default options at 10k, 20k, 50k,
   100k and 1M clustered codes (recall too; ivf also at the nprobe part 4 recommends).
4. **Recommendations** for ``AUTO_IVF_FROM`` and the ivf nprobe and hnsw ef_search defaults, by both recalls
   (rules printed).

Each throughput is the median of 3 timings, each at least 1 s (a batch of queries searched repeatedly until
a second has passed); in part 1 ours and bare alternate, so a busy spell of the machine hits both alike.
Part 2 and 3 run on the machine's threads (2 unless ``--threads``).

    python bench/search.py [--quick] [--threads 2] [--repeat 3]

``--quick`` (a smoke test, under a minute): 10k and 50k items in part 1, 2k to 20k in parts 2 and 3, fewer queries.

The command line and everything printed go into docs/benchmarks.md, between the ``search`` markers (``search-quick``
for ``--quick``).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import math
import os
import shlex
import statistics
import sys
import time

import faiss
import numba
import numpy as np
import psutil
from common import BENCHMARKS, write_report

from graphhash import hamming
from graphhash.index import build_index
from graphhash.index.binary import HNSW, IVF

BITS, K = 64, 100
CENTRES, FLIP = 1_000, 0.1
NPROBES, EF_SEARCHES = (1, 4, 16, 64, 256), (100, 200, 400, 800)  # 256 and 800: beyond the brief's sweep
TARGET_RECALL = 0.95
# part 1's database sizes with the queries of one timed batch; parts 2 and 3's queries and sizes (2: the last)
FULL = {"flat_batches": {100_000: 10_000, 1_000_000: 1_000}, "queries": 1_000,
        "growth": [10_000, 20_000, 50_000, 100_000, 1_000_000], "min_seconds": 1.0, "check": 300}  # fmt: skip
QUICK = {"flat_batches": {10_000: 500, 50_000: 200}, "queries": 300, "growth": [2_000, 5_000, 20_000],
         "min_seconds": 0.2, "check": 100}  # fmt: skip


# ---------------------------------------------------------------- codes, threads, timing


def code_set(kind: str, items: int, queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Packed database (items, 8) and query (queries, 8) codes of ``kind`` (module docstring)."""
    rng = np.random.default_rng(seed)
    if kind == "random":
        return (rng.integers(0, 256, (items, BITS // 8), dtype=np.uint8),
                rng.integers(0, 256, (queries, BITS // 8), dtype=np.uint8))  # fmt: skip
    centres = rng.random((CENTRES, BITS)) < 0.5

    def draw(count: int) -> np.ndarray:
        return np.packbits(centres[rng.integers(0, CENTRES, count)] ^ (rng.random((count, BITS)) < FLIP), axis=1)

    return draw(items), draw(queries)


def set_threads(threads: int) -> None:
    faiss.omp_set_num_threads(threads)
    numba.set_num_threads(threads)


def rate(search, queries: np.ndarray, min_seconds: float) -> float:
    """Queries per second of ``search(queries)``, repeated until ``min_seconds`` have passed."""
    done, start = 0, time.perf_counter()
    while True:
        search(queries)
        done += len(queries)
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return done / elapsed


def median_rates(runs: dict, queries: np.ndarray, repeat: int, min_seconds: float) -> dict[str, float]:
    """The median queries/s of each of ``runs`` (name: search function) over ``repeat`` interleaved rounds."""
    rates = {name: [] for name in runs}
    for _ in range(repeat):
        for name, search in runs.items():
            rates[name].append(rate(search, queries, min_seconds))
    return {name: statistics.median(values) for name, values in rates.items()}


def rss_mib() -> float:
    gc.collect()
    return psutil.Process().memory_info().rss / 2**20


def built(kind: str, database: np.ndarray, options: dict | None = None):
    """(our index kind, the FAISS index, build seconds, serialised MiB, RSS growth MiB)."""
    ours = build_index(kind, options or {})
    before = rss_mib()
    start = time.perf_counter()
    index = ours.build(database)
    seconds = time.perf_counter() - start
    grown = rss_mib() - before
    return ours, index, seconds, faiss.serialize_index_binary(index).nbytes / 2**20, grown


def recalls(found: np.ndarray, exact: np.ndarray) -> tuple[float, float]:
    """(recall@k of ids, recall@k of distances): the fraction of the exact top-k ids found, and of the exact
    top-k distances matched as a multiset (blind to which of several items at one distance was returned)."""
    found_ids, found_d = found
    exact_ids, exact_d = exact
    ids = np.mean([np.isin(e, f).mean() for f, e in zip(found_ids, exact_ids, strict=True)])
    size = BITS + 2  # distances 0..64, and -1 (not found) in column 0

    def histogram(d: np.ndarray) -> np.ndarray:
        counts = np.zeros((len(d), size), np.int64)
        np.add.at(counts, (np.repeat(np.arange(len(d)), d.shape[1]), d.ravel() + 1), 1)
        return counts[:, 1:]

    dist = np.minimum(histogram(found_d), histogram(exact_d)).sum(axis=1).mean() / exact_d.shape[1]
    return float(ids), float(dist)


# ---------------------------------------------------------------- part 1: flat against bare FAISS


def flat_throughput(sets: dict, sizes: list[int], batches: dict, threads: list[int], args) -> dict:
    print(f"\n1. Flat, {BITS} bits, k = {K}: ours (Flat().search: FAISS 2k + 1, exact re-rank, ties completed) vs bare "
          f"IndexBinaryFlat.search(queries, k); median of {args.repeat}, each >= {args.min_seconds:g} s")  # fmt: skip
    print(f"{'codes':>10}{'items':>11}{'threads':>8}{'queries':>9}{'ours q/s':>11}{'bare q/s':>11}{'ours/bare':>10}")
    exact_everywhere, flat_rates = True, {}
    for kind, (database, queries) in sets.items():
        for n in sizes:
            flat = build_index("flat", {})
            index = flat.build(database[:n])
            batch = queries[: batches[n]]
            check = queries[: args.check]
            set_threads(max(threads))
            ours_ids, ours_d = flat.search(index, database[:n], check, K)
            top_ids, top_d = hamming.top_k(check, database[:n], K)
            exact_everywhere &= bool(np.array_equal(ours_ids, top_ids) and np.array_equal(ours_d, top_d))
            for t in threads:
                set_threads(t)
                got = median_rates({"ours": lambda q, f=flat, i=index, d=database[:n]: f.search(i, d, q, K),
                                    "bare": lambda q, i=index: i.search(q, K)},
                                   batch, args.repeat, args.min_seconds)  # fmt: skip
                flat_rates[(kind, n, t)] = got
                print(f"{kind:>10}{n:>11,}{t:>8}{len(batch):>9}{got['ours']:>11,.0f}{got['bare']:>11,.0f}"
                      f"{got['ours'] / got['bare']:>10.2f}", flush=True)  # fmt: skip
    print(f"exact (ours == hamming.top_k on {args.check} queries, every code set and size): "
          f"{'yes' if exact_everywhere else 'NO'}")  # fmt: skip
    return flat_rates


# ---------------------------------------------------------------- parts 2 and 3: ivf and hnsw


class Lab:
    """Indexes over prefixes of one clustered database, each built once, and their measured searches."""

    def __init__(self, database: np.ndarray, queries: np.ndarray, args):
        self.database, self.queries, self.args = database, queries, args
        self.indexes: dict[tuple[str, int], tuple] = {}
        self.exact: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def index(self, kind: str, n: int) -> tuple:
        if (kind, n) not in self.indexes:
            options = {"M": self.args.hnsw_m} if kind == "hnsw" else {}
            self.indexes[(kind, n)] = built(kind, self.database[:n], options)
        return self.indexes[(kind, n)]

    def measure(self, kind: str, n: int, setting: int | None = None) -> dict:
        """Queries/s and recalls of ``kind`` over the first ``n`` items; ``setting``: nprobe or ef_search."""
        ours, index, seconds, mib, grown = self.index(kind, n)
        database = self.database[:n]
        if kind == "ivf" and setting is not None:
            ours = IVF(nprobe=setting)  # search sets the index's nprobe from its own
        elif kind == "hnsw" and setting is not None:
            ours = build_index("hnsw", {"M": self.args.hnsw_m, "ef_search": setting})

        def search(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return ours.search(index, database, q, K)

        if n not in self.exact:
            flat = self.index("flat", n)
            self.exact[n] = flat[0].search(flat[1], database, self.queries, K)
        qps = median_rates({kind: search}, self.queries, self.args.repeat, self.args.min_seconds)[kind]
        recall, dist = recalls(search(self.queries), self.exact[n])
        return {"build_s": seconds, "mib": mib, "rss_mib": grown, "qps": qps, "recall": recall, "dist": dist}


def approximate(lab: Lab, n: int) -> dict:
    print(f"\n2. ivf and hnsw at {n:,} clustered codes ({BITS} bits, k = {K}, {len(lab.queries)} queries, "
          f"{lab.args.threads} threads); recall@{K} against exact flat")  # fmt: skip
    nlist = IVF().cells(n)
    print(f"   ivf: nlist auto = {nlist:,}; hnsw: M {lab.args.hnsw_m}, ef_construction 40")
    print(f"{'index':>6}{'setting':>14}{'build s':>9}{'MiB':>8}{'RSS +MiB':>9}{'q/s':>10}{'recall':>8}{'dist':>7}")
    rows = {"flat": lab.measure("flat", n)}
    rows.update({("ivf", p): lab.measure("ivf", n, p) for p in NPROBES if p <= nlist})
    rows.update({("hnsw", e): lab.measure("hnsw", n, e) for e in EF_SEARCHES})
    for key, row in rows.items():
        name, setting = (key, "-") if key == "flat" else (key[0], f"{'nprobe' if key[0] == 'ivf' else 'ef'} {key[1]}")
        print(f"{name:>6}{setting:>14}{row['build_s']:>9.1f}{row['mib']:>8.1f}{row['rss_mib']:>9.0f}"
              f"{row['qps']:>10,.0f}{row['recall']:>8.3f}{row['dist']:>7.3f}", flush=True)  # fmt: skip
    return rows


def growth(lab: Lab, sizes: list[int], nprobes: list[int]) -> dict:
    print(f"\n3. Growth, clustered codes, k = {K}, default options (ivf nlist auto, nprobe {IVF().nprobe}; hnsw M "
          f"{lab.args.hnsw_m}, ef_search {HNSW().ef_search}), {lab.args.threads} threads")  # fmt: skip
    print(f"{'items':>11}{'index':>16}{'build s':>9}{'q/s':>10}{'recall':>8}{'dist':>7}{'x flat':>8}")
    table = {}
    for n in sizes:
        table[(n, "flat")] = lab.measure("flat", n)
        for p in nprobes:
            table[(n, f"ivf nprobe {p}")] = lab.measure("ivf", n, p)
        table[(n, "hnsw")] = lab.measure("hnsw", n, HNSW().ef_search)
        for name in [name for (m, name) in table if m == n]:
            row = table[(n, name)]
            print(f"{n:>11,}{name:>16}{row['build_s']:>9.2f}{row['qps']:>10,.0f}{row['recall']:>8.3f}"
                  f"{row['dist']:>7.3f}{row['qps'] / table[(n, 'flat')]['qps']:>8.2f}", flush=True)  # fmt: skip
    return table


# ---------------------------------------------------------------- part 4: recommendations


METRICS = {"recall": "recall@100 of ids (as asked)", "dist": "recall@100 of distances (ties counted as found)"}


def smallest_enough(rows: dict, kind: str, settings: tuple[int, ...], metric: str) -> tuple[int, str]:
    """The smallest setting of ``kind`` whose ``metric`` reaches the target, and why it was chosen; also where
    the recall stops growing (the smallest setting within 0.005 of the best measured)."""
    measured = [s for s in settings if (kind, s) in rows]
    best = max(rows[(kind, s)][metric] for s in measured)
    plateau = next(s for s in measured if rows[(kind, s)][metric] >= best - 0.005)
    at = {s: f"{rows[(kind, s)][metric]:.3f} at {rows[(kind, s)]['qps']:,.0f} q/s" for s in measured}
    also = f"; plateau from {plateau} ({at[plateau]})"
    for s in measured:
        if rows[(kind, s)][metric] >= TARGET_RECALL:
            return s, f"the smallest reaching {TARGET_RECALL} ({at[s]}){also}"
    return measured[-1], f"none reaches {TARGET_RECALL}; the largest tried ({at[measured[-1]]}){also}"


def crossing(table: dict, sizes: list[int], name: str, metric: str) -> tuple[int | None, str]:
    """The database size from which ``name`` (an ivf row) is faster than flat with ``metric`` >= target at every
    larger size measured; interpolated in log-log between two measured sizes where the speed ratio crosses 1
    (flat's time grows as n, ivf's about as sqrt(n))."""
    rows = [(n, table[(n, name)]["qps"] / table[(n, "flat")]["qps"], table[(n, name)][metric]) for n in sizes]
    good = [ratio >= 1 and recall >= TARGET_RECALL for _, ratio, recall in rows]
    if not good[-1]:
        n, ratio, recall = rows[-1]
        return None, f"at {n:,} items: {ratio:.2f}x flat, recall {recall:.3f}"
    first = len(good) - 1
    while first > 0 and good[first - 1]:
        first -= 1
    if first == 0:
        return sizes[0], f"already {rows[0][1]:.2f}x flat at the smallest size, {sizes[0]:,}"
    (n1, r1, recall1), (n2, r2, _) = rows[first - 1], rows[first]
    if recall1 < TARGET_RECALL:
        return n2, f"recall {recall1:.3f} at {n1:,} items; {r2:.2f}x flat with enough recall at {n2:,}"
    at = math.exp(math.log(n1) + (math.log(n2) - math.log(n1)) * -math.log(r1) / (math.log(r2) - math.log(r1)))
    step = 10 ** (math.floor(math.log10(at)) - 1)
    rounded = math.ceil(at / step) * step  # up, to two significant digits
    return rounded, (f"{r1:.2f}x flat at {n1:,} and {r2:.2f}x at {n2:,}: equal at about {at:,.0f} "
                     f"(log-log interpolation), rounded up to {rounded:,}")  # fmt: skip


def recommend(rows: dict, table: dict, sizes: list[int]) -> None:
    print(f"\n4. Recommendations (parts 2 and 3; target {TARGET_RECALL} at k = {K}; settings chosen at {sizes[-1]:,})")
    print("   AUTO_IVF_FROM: the size from which ivf is faster than flat with recall >= target (every larger size too)")
    for metric, meaning in METRICS.items():
        nprobe, why_nprobe = smallest_enough(rows, "ivf", NPROBES, metric)
        ef, why_ef = smallest_enough(rows, "hnsw", EF_SEARCHES, metric)
        print(f"   by {meaning}:")
        print(f"     ivf nprobe: {nprobe}: {why_nprobe}")
        print(f"     hnsw ef_search: {ef}: {why_ef}")
        for p in sorted({16, nprobe}):
            size, why = crossing(table, sizes, f"ivf nprobe {p}", metric)
            verdict = f"AUTO_IVF_FROM = {size:,}" if size else "no size measured qualifies"
            print(f"     ivf nprobe {p}: {verdict}: {why}")


# ---------------------------------------------------------------- main


class Tee(io.StringIO):
    """Kept text that also goes to ``out`` as it is written: the report is everything printed."""

    def __init__(self, out: io.TextIOBase):
        super().__init__()
        self.out = out

    def write(self, text: str) -> int:
        self.out.write(text)
        self.out.flush()
        return super().write(text)


def main() -> None:
    printed = Tee(sys.stdout)
    with contextlib.redirect_stdout(printed):
        quick = measure()
    block = "search-quick" if quick else "search"
    command = shlex.join(["python", "bench/search.py", *sys.argv[1:]])
    with contextlib.redirect_stdout(io.StringIO()):  # printed above, as measured
        write_report(BENCHMARKS, ["```", f"$ {command}", *printed.getvalue().rstrip().splitlines(), "```"], block)
    trial = " (a trial run: into the copy in BENCH_DOCS)" if os.environ.get("BENCH_DOCS") else ""
    print(f"docs/benchmarks.md: the {block} block written{trial}")


def measure() -> bool:
    """Every part, printed; whether it was ``--quick``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small version, under a minute (smoke test)")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1), help="parts 2 and 3")
    parser.add_argument("--repeat", type=int, default=3, help="timings per figure (median kept)")
    parser.add_argument("--hnsw-m", type=int, default=32)
    args = parser.parse_args()
    started = time.perf_counter()
    plan = QUICK if args.quick else FULL
    args.min_seconds, args.check = plan["min_seconds"], plan["check"]
    if args.quick:
        args.repeat = min(args.repeat, 2)
    sizes, batches = list(plan["flat_batches"]), plan["flat_batches"]
    largest = max(sizes)
    print(f"graphhash search benchmark{' (--quick)' if args.quick else ''}: {BITS}-bit synthetic codes, k = {K}, "
          f"{os.cpu_count()} CPUs, faiss {faiss.__version__}; codes: random (uniform) and clustered "
          f"({CENTRES:,} centres, bits flipped with p = {FLIP})")  # fmt: skip
    sets = {kind: code_set(kind, largest, max(batches.values())) for kind in ("random", "clustered")}
    small, few = sets["random"][0][:200], sets["random"][1][:2]
    flat = build_index("flat", {})
    flat.search(flat.build(small), small, few, 150), hamming.top_k(few, small, 5)  # compile or load Numba's cache
    flat_throughput(sets, sizes, batches, sorted({1, args.threads}), args)

    set_threads(args.threads)
    database, all_queries = sets["clustered"]
    lab = Lab(database, all_queries[: plan["queries"]], args)
    rows = approximate(lab, plan["growth"][-1])  # the largest size of part 3, whose indexes it reuses
    nprobes = {16, *(smallest_enough(rows, "ivf", NPROBES, metric)[0] for metric in METRICS)}
    table = growth(lab, plan["growth"], sorted(nprobes))
    recommend(rows, table, plan["growth"])
    print(f"\nwall time: {time.perf_counter() - started:.0f} s")
    return args.quick


if __name__ == "__main__":
    main()
