"""Exact mAP@1000 + mAP@all against the physical limit: one bare XOR-popcount pass over all pairs.

Three things run side by side in one process, on the same codes, and are timed as wall seconds:

- **limit**: a Numba loop that sums popcount(q XOR db) over every (query, item) pair and nothing else, on
  the same threads as the evaluator (query blocks on a thread pool). Its database words are transposed
  (word-major) so that LLVM vectorises the loop: the fastest bare pass, not a straw man.
- **new**: ``graphhash.evaluation.metrics.evaluate`` (the counting kernel of ``graphhash.hamming``, query
  blocks on ``threads`` threads), asked for mAP@1000 and mAP@all; it also computes the radius and rank
  curves, as it always does.
- **old**: the previous evaluator, its kernel copied below (``_old_per_query``, one thread: it counted the
  items per distance, then handed out ranks in a second pass over the database in database order).

Every metric of new and old must be equal (the script prints the largest difference; 0 means the same
floats). ``top_k`` (k = 100) is timed on the same codes. Limit, new and top_k run in interleaved rounds and
the fastest of each is kept (the machine may be shared); the old evaluator runs ``--old-repeat`` times.
``--cold`` measures the first compile of each evaluator in a fresh process with an empty Numba cache (what
a fresh clone pays in ``dvc repro``).

Codes (64 bits unless ``--bits``; 10,000 queries x 50,000 items unless told), seeded:

- ``random``: uniform random codes and 10 random classes (distances binomial around bits / 2: heavy ties,
  no class structure, mAP at chance);
- ``clustered``: 10 classes, each a random centre code with every bit flipped with probability 0.2 per
  item (labels = classes: ties and class structure as in trained codes; mAP@all about 0.9).

The command line and everything printed go into docs/benchmarks.md, between the ``evaluator_limit`` markers.

    python bench/evaluator_limit.py [--data random clustered] [--queries 10000] [--database 50000]
                                    [--bits 64] [--threads N] [--repeat 5] [--old-repeat 1] [--cold]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shlex
import subprocess
import sys
import tempfile
import time

import numba
import numpy as np
from common import BENCHMARKS, write_report

from graphhash.evaluation import metrics
from graphhash.hamming import _popcount, in_blocks, thread_count, top_k, words

REPORT: list[str] = []  # what ``say`` printed: the block of docs/benchmarks.md


def say(text: str = "") -> None:
    print(text, flush=True)
    REPORT.extend(text.split("\n"))


@numba.njit(cache=True, nogil=True)
def _bare_pass(query, database_t):
    """sum over pairs of popcount(q XOR db); database_t is word-major (W, n)."""
    total = np.uint64(0)
    for i in range(query.shape[0]):
        for w in range(database_t.shape[0]):
            x, row = query[i, w], database_t[w]
            for j in range(row.shape[0]):
                total += _popcount(x ^ row[j])
    return total


def limit(query_words: np.ndarray, database_t: np.ndarray, threads: int) -> int:
    sums = in_blocks(lambda part: _bare_pass(query_words[part], database_t), len(query_words), 256, threads)
    return int(sum(int(s) for s in sums))


# ---------------------------------------------------------------- the previous evaluator (before this change)


@numba.njit(cache=True)
def _old_per_query(query, database, query_labels, database_labels, bits, map_at, precision_at, grid):
    """The previous kernel, unchanged but for the popcount's import: two passes over the database per query."""
    q, n = query.shape[0], database.shape[0]
    ap = np.zeros((q, len(map_at)))
    p_at = np.zeros((q, len(precision_at)))
    ball_precision = np.zeros((q, bits + 1))
    ball_recall = np.zeros((q, bits + 1))
    rank_precision = np.zeros((q, len(grid)))
    for i in range(q):
        distance = np.empty(n, np.uint16)
        relevant = np.empty(n, np.bool_)
        count = np.zeros(bits + 1, np.int64)
        relevant_count = np.zeros(bits + 1, np.int64)
        for j in range(n):
            d = np.uint64(0)
            for w in range(query.shape[1]):
                d += _popcount(query[i, w] ^ database[j, w])
            shared = False
            for w in range(query_labels.shape[1]):
                if query_labels[i, w] & database_labels[j, w]:
                    shared = True
            distance[j] = d
            relevant[j] = shared
            count[d] += 1
            relevant_count[d] += shared
        total = relevant_count.sum()
        start = np.empty(bits + 1, np.int64)
        relevant_start = np.empty(bits + 1, np.int64)
        retrieved, found = 0, 0
        for v in range(bits + 1):
            start[v], relevant_start[v] = retrieved, found
            retrieved += count[v]
            found += relevant_count[v]
            if retrieved > 0:
                ball_precision[i, v] = found / retrieved
            if total > 0:
                ball_recall[i, v] = found / total
        ranks = np.empty(total, np.int64)
        for j in range(n):
            v = distance[j]
            start[v] += 1
            if relevant[j]:
                ranks[relevant_start[v]] = start[v]
                relevant_start[v] += 1
        for c in range(len(map_at)):
            precision_sum, hits = 0.0, 0
            while hits < total and ranks[hits] <= map_at[c]:
                hits += 1
                precision_sum += hits / ranks[hits - 1]
            if hits > 0:
                ap[i, c] = precision_sum / hits
        for c in range(len(precision_at)):
            cut = min(precision_at[c], n)
            p_at[i, c] = np.searchsorted(ranks, cut, side="right") / cut
        if total > 0:
            for c in range(len(grid)):
                needed = int(np.ceil(grid[c] * total - 1e-9))
                rank_precision[i, c] = needed / ranks[needed - 1]
    return ap, p_at, ball_precision, ball_recall, rank_precision


def old_evaluate(query, database, query_labels, database_labels, bits, map_at=(1000,), block_size=1024) -> dict:
    """The previous ``evaluate`` (single-label only here): mAP@all, mAP@K and the curves, blocks of queries."""
    classes = int(max(query_labels.max(), database_labels.max())) + 1
    one_hot = np.eye(classes, dtype=bool)
    qlw, dlw = (words(np.packbits(one_hot[labels], axis=1)) for labels in (query_labels, database_labels))
    qw, dw = words(query), words(database)
    cutoffs = np.array([len(database), *map_at], dtype=np.int64)
    grid = np.asarray(metrics.RECALL_GRID)
    sums = None
    for start in range(0, len(query), block_size):
        part = slice(start, start + block_size)
        block = _old_per_query(qw[part], dw, qlw[part], dlw, bits, cutoffs, np.zeros(0, np.int64), grid)
        block_sums = [values.sum(axis=0) for values in block]
        sums = block_sums if sums is None else [a + b for a, b in zip(sums, block_sums, strict=True)]
    ap, _, ball_precision, ball_recall, rank_precision = (values / len(query) for values in sums)
    return {"map@all": ap[0], **{f"map@{k}": ap[c + 1] for c, k in enumerate(map_at)},
            "ball_precision": ball_precision, "ball_recall": ball_recall, "rank_precision": rank_precision}  # fmt: skip


# ---------------------------------------------------------------- data, timing


def codes(kind: str, queries: int, items: int, bits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Packed query and database codes and their class labels (module docstring)."""
    rng = np.random.default_rng(0)
    query_labels, database_labels = rng.integers(0, 10, queries), rng.integers(0, 10, items)
    if kind == "random":
        query_bits, database_bits = rng.random((queries, bits)) < 0.5, rng.random((items, bits)) < 0.5
    else:
        centres = rng.random((10, bits)) < 0.5
        query_bits = centres[query_labels] ^ (rng.random((queries, bits)) < 0.2)
        database_bits = centres[database_labels] ^ (rng.random((items, bits)) < 0.2)
    return np.packbits(query_bits, axis=1), np.packbits(database_bits, axis=1), query_labels, database_labels


def best_of(repeat: int, runs: dict) -> tuple[dict[str, float], dict]:
    """Each of ``runs`` (name: callable) ``repeat`` times, interleaved round by round so that a busy spell of
    the machine does not fall on one of them only: the fastest seconds of each, and each one's last result."""
    seconds = {name: float("inf") for name in runs}
    results = {}
    for _ in range(repeat):
        for name, run in runs.items():
            start = time.perf_counter()
            results[name] = run()
            seconds[name] = min(seconds[name], time.perf_counter() - start)
    return seconds, results


def largest_difference(new: dict, old: dict) -> float:
    pairs = [(new["map@all"], old["map@all"]), (new["map@1000"], old["map@1000"]),
             (new["pr_by_radius"]["precision"], old["ball_precision"]),
             (new["pr_by_radius"]["recall"], old["ball_recall"]),
             (new["pr_by_rank"]["precision"], old["rank_precision"])]  # fmt: skip
    return max(float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for a, b in pairs)


def cold(which: str) -> float:
    """Seconds of the first call of an evaluator, in a fresh process with an empty Numba cache."""
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        out = subprocess.run([sys.executable, __file__, "--first-call", which], env=env, check=True,
                             capture_output=True, text=True).stdout  # fmt: skip
    return float(out.split()[-1])


def first_call(which: str) -> None:
    q, db, ql, dl = codes("random", 4, 40, 64)
    start = time.perf_counter()
    if which == "new":
        metrics.evaluate(q, db, ql, dl, 64)
    else:
        old_evaluate(q, db, ql, dl, 64)
    print(f"{time.perf_counter() - start:.3f}")


def run(kind: str, args: argparse.Namespace, threads: int) -> None:
    q, db, ql, dl = codes(kind, args.queries, args.database, args.bits)
    qw, dwt = words(q), np.ascontiguousarray(words(db).T)
    # compile (or load Numba's cache) before timing
    limit(qw[:2], dwt, threads), metrics.evaluate(q[:2], db[:50], ql[:2], dl[:50], args.bits)
    top_k(q[:2], db[:50], 5)
    if args.old_repeat:
        old_evaluate(q[:2], db[:50], ql[:2], dl[:50], args.bits)

    seconds, results = best_of(args.repeat, {
        "limit": lambda: limit(qw, dwt, threads),
        "new": lambda: metrics.evaluate(q, db, ql, dl, args.bits, map_at=(1000,), precision_at=(), threads=threads),
        "top_k": lambda: top_k(q, db, 100, threads=threads),
    })  # fmt: skip
    old_seconds, old_results = best_of(args.old_repeat, {"old": lambda: old_evaluate(q, db, ql, dl, args.bits)})
    limit_s, new_s, top_s, old_s = seconds["limit"], seconds["new"], seconds["top_k"], old_seconds["old"]
    new, old = results["new"], old_results.get("old")  # none with --old-repeat 0
    say(f"\n{kind} codes: {len(q)} queries x {len(db)} items, {args.bits} bits, {threads} threads")
    say(f"  mAP@1000 {new['map@1000']:.17f}  mAP@all {new['map@all']:.17f}")
    say(f"  {'':34}{'seconds':>9}{'x limit':>9}")
    timed = [("limit (bare XOR-popcount pass)", limit_s), ("new evaluator (mAP@1000 + mAP@all)", new_s),
             ("old evaluator (previous, 1 thread)", old_s), ("top_k, k = 100", top_s)]  # fmt: skip
    for name, seconds in timed if old is not None else [timed[0], timed[1], timed[3]]:
        say(f"  {name:34}{seconds:>9.3f}{seconds / limit_s:>9.1f}")
    if old is not None:
        say(f"  new vs old: {old_s / new_s:.1f}x faster; largest |new - old| over every metric: "
            f"{largest_difference(new, old):.1e}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", choices=["random", "clustered"], default=["random", "clustered"])
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--database", type=int, default=50_000)
    parser.add_argument("--bits", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=5, help="rounds of limit, new and top_k (fastest kept)")
    parser.add_argument("--old-repeat", type=int, default=1, help="runs of the old evaluator (fastest kept)")
    parser.add_argument("--cold", action="store_true", help="also time each evaluator's first compile")
    parser.add_argument("--first-call", choices=["new", "old"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.first_call:
        first_call(args.first_call)
        return
    threads = thread_count(args.threads)
    say(f"threads: {threads} (numba.get_num_threads() = {numba.get_num_threads()}, {os.cpu_count()} CPUs)")
    if args.cold:
        say(f"cold first call (empty Numba cache): new {cold('new'):.1f} s, old {cold('old'):.1f} s")
    for kind in args.data:
        run(kind, args, threads)
    command = shlex.join(["python", "bench/evaluator_limit.py", *sys.argv[1:]])
    with contextlib.redirect_stdout(io.StringIO()):  # printed above, as measured
        write_report(BENCHMARKS, ["```", f"$ {command}", *REPORT, "```"], "evaluator_limit")
    trial = " (a trial run: into the copy in BENCH_DOCS)" if os.environ.get("BENCH_DOCS") else ""
    print(f"docs/benchmarks.md: the evaluator_limit block written{trial}")


if __name__ == "__main__":
    main()
