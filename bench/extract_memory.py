"""Memory of the extract stage as the number of images grows: streaming keeps it flat.

Each run is a fresh process that samples its own resident memory (RSS) every 0.2 s while it extracts.
Printed: the peak, and the RSS a quarter, half, three quarters of the way and at the end. Flat rows mean
memory does not grow as images are processed; equal peaks across sizes mean it does not grow with N.
Each size runs several times because the peak varies from run to run by ~200 MiB whatever the size
(glibc's per-thread arenas keep what the model's threads allocated, and which thread allocates varies).

The command line and the table go into docs/benchmarks.md, between the ``extract_memory`` markers.

    python bench/extract_memory.py [--counts 2000 10000] [--repeats 3]
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
import threading
import time
from pathlib import Path

import psutil
from common import BENCHMARKS, cifar_manifest, write_report

from graphhash.params.extract import ExtractParams
from graphhash.pipeline.extract import extract
from graphhash.runtime import tune_allocator


def one_run(count: int) -> None:
    """Extract ``count`` images; print count, seconds, peak MiB, and MiB at 25/50/75/100% of the run."""
    tune_allocator()  # as the stage does
    manifest = cifar_manifest(count)
    process, samples, done = psutil.Process(), [], threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append(process.memory_info().rss / 2**20)
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        sampler.start()
        extract(manifest, ExtractParams(image_size=160, batch_size=64, num_workers="auto"), Path(tmp) / "features.h5")
        done.set()
        sampler.join()
        seconds = time.perf_counter() - start
    quarters = [samples[min(len(samples) - 1, len(samples) * q // 4)] for q in (1, 2, 3, 4)]
    print(len(manifest), f"{seconds:.1f}", f"{max(samples):.0f}", *(f"{q:.0f}" for q in quarters))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", type=int, nargs="+", default=[2000, 10000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one_run(args.one)
        return
    lines = ["```", f"$ {shlex.join(['python', 'bench/extract_memory.py', *sys.argv[1:]])}"]

    def say(line: str) -> None:  # each run's row as soon as it is measured
        print(line, flush=True)
        lines.append(line)

    say("EfficientNet-Lite0 at 160 px, batch 64, workers auto (none on CPU), CIFAR-10 from the tar")
    say(f"{'images':>7} {'seconds':>8} {'peak MiB':>9}   RSS MiB at 25% / 50% / 75% / 100% of the run")
    peaks: dict[int, list[float]] = {}
    for count in args.counts:
        for _ in range(args.repeats):
            out = subprocess.run([sys.executable, __file__, "--one", str(count)], capture_output=True, text=True,
                                 check=True).stdout.split()  # fmt: skip
            if out and out[0] == "skipped:":
                print(" ".join(out))
                return
            peaks.setdefault(int(out[0]), []).append(float(out[2]))
            say(f"{out[0]:>7} {out[1]:>8} {out[2]:>9}   {' / '.join(out[3:])}")
    means = {n: sum(values) / len(values) for n, values in peaks.items()}
    for n, values in peaks.items():
        say(f"{n} images: peak {means[n]:.0f} MiB on average (min {min(values):.0f}, max {max(values):.0f})")
    small, large = min(means), max(means)
    ratio = means[large] / means[small]
    say(f"mean peak ratio {large} / {small} images: {ratio:.3f} ({large / small:.1f}x the images)")
    with contextlib.redirect_stdout(io.StringIO()):  # printed above, row by row
        write_report(BENCHMARKS, [*lines, "```"], "extract_memory")
    trial = " (a trial run: into the copy in BENCH_DOCS)" if os.environ.get("BENCH_DOCS") else ""
    print(f"docs/benchmarks.md: the extract_memory block written{trial}")


if __name__ == "__main__":
    main()
