"""Latency of one image query, directly and through ``graphhash serve``, and the server under load.

Against a run folder (``--run``, default this repository) with 64-bit codes (``--bits``), k = 10, 127.0.0.1 only:

1. **Direct**, in this process, warm: ``Retriever.search_images`` on one image at a time (decode, backbone,
   hash network, index search), 5 warm-up queries then ``--queries`` (100) timed ones: p50 / p95 ms; after
   each, the same image through the Retriever's own steps, each timed: embed (``decode`` + ``embed``), hash
   (``encode_features``), search (``search_codes``). The images are the run's query items
   (``retriever.image(id)``), encoded as PNG bytes. Every image runs twice, alternating: on torch's default
   thread count (what the server process starts with) and on one torch thread (on a machine whose cores are
   busy with other work, OpenMP threads that wait on each other at every layer can cost far more than the
   second core gains).
2. **Through the server**: ``graphhash serve --port <free port> --run DIR --bits 64`` as a subprocess (it binds
   127.0.0.1), waited for on ``/api/info``, then the same images as sequential single POSTs of the PNG bytes
   to ``/api/search?k=10``: p50 / p95 ms.
3. **Load**: ``--clients`` (8) threads, each with its own ``httpx2.Client``, send ``--requests`` (200) requests
   each, alternating an image upload (a PNG of a query item) and a JSON id search (``{"id": ..., "k": 10}``
   of a database item): half each. Reported: requests/s, p50 / p95 / max ms, errors (any non-200 or failed
   request; every request has a ``--timeout``), and the server process's RSS sampled every 0.5 s: first,
   max and last. The test runs ``--rounds`` (2) times on the same server: a leak would show as RSS still
   growing in the second round. A round stops by itself at ``--deadline`` seconds if it has not finished
   (said in the output), and the server is always stopped (terminate, then kill if it does not exit).

The command line and everything printed go into docs/benchmarks.md, between the ``serve_load`` markers.

    python bench/serve_load.py [--run DIR] [--bits 64] [--queries 100] [--clients 8] [--requests 200] [--rounds 2]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx2
import numpy as np
import psutil
import torch
from common import BENCHMARKS, REPO, write_report

from graphhash.data.images import decode
from graphhash.files.codes import pack
from graphhash.retrieval.retriever import Retriever

K, WARM_UP = 10, 5


def ms_summary(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000
    return {"n": len(ms), "p50": float(np.percentile(ms, 50)), "p95": float(np.percentile(ms, 95)),
            "max": float(ms.max())}  # fmt: skip


def line(name: str, s: dict[str, float]) -> str:
    return f"  {name:38}{s['n']:>6}{s['p50']:>9.1f}{s['p95']:>9.1f}{s['max']:>9.1f}"


HEADER = f"  {'':38}{'count':>6}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}"


def png(retriever: Retriever, item_id: str) -> bytes:
    buffer = io.BytesIO()
    retriever.image(item_id).save(buffer, format="PNG")
    return buffer.getvalue()


# ---------------------------------------------------------------- 1. direct


def direct(retriever: Retriever, images: list[tuple[str, bytes]]) -> dict[str, dict]:
    """End to end, then its steps, per image; torch's default thread count and one thread alternating."""
    default_threads = torch.get_num_threads()
    for image in images[:WARM_UP]:
        retriever.search_images([image], K)
    times = {(threads, part): [] for threads in (default_threads, 1) for part in ("all", "embed", "hash", "search")}
    for name, data in images:
        for threads in (default_threads, 1):
            torch.set_num_threads(threads)
            t0 = time.perf_counter()
            retriever.search_images([(name, data)], K)
            t1 = time.perf_counter()
            features = retriever.encoder.embed([np.asarray(decode(data, name))])
            t2 = time.perf_counter()
            codes = pack(retriever.encoder.encode_features(features))
            t3 = time.perf_counter()
            retriever.search_codes(codes, K)
            t4 = time.perf_counter()
            for part, seconds in (("all", t1 - t0), ("embed", t2 - t1), ("hash", t3 - t2), ("search", t4 - t3)):
                times[(threads, part)].append(seconds)
    torch.set_num_threads(default_threads)
    labels = {"all": "search_images ({t} torch thr)", "embed": "  embed: decode + backbone ({t})",
              "hash": "  hash: encode_features ({t})", "search": "  search: search_codes ({t})"}  # fmt: skip
    return {labels[part].format(t=threads): ms_summary(values) for (threads, part), values in times.items()}


# ---------------------------------------------------------------- 2 and 3: the server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(run: Path, bits: int, port: int, log: Path) -> subprocess.Popen:
    script = Path(sys.executable).parent / "graphhash"
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "graphhash.cli"]
    command += ["serve", "--port", str(port), "--run", str(run), "--bits", str(bits)]
    with log.open("wb") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)


def wait_ready(server: subprocess.Popen, base: str, log: Path, limit: float = 180.0) -> float:
    """Seconds until ``/api/info`` answers 200; raises if the server exits or ``limit`` passes."""
    start = time.perf_counter()
    while time.perf_counter() - start < limit:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited ({server.returncode}):\n{log.read_text()[-2000:]}")
        try:
            if httpx2.get(f"{base}/api/info", timeout=2).status_code == 200:
                return time.perf_counter() - start
        except httpx2.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the server did not answer /api/info within {limit:.0f} s")


def stop_server(server: subprocess.Popen) -> None:
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(15)


def sequential(base: str, images: list[tuple[str, bytes]], timeout: float) -> dict[str, float]:
    times = []
    with httpx2.Client(base_url=base, timeout=timeout) as client:
        for i, (name, data) in enumerate(images[:WARM_UP] + images):
            start = time.perf_counter()
            response = client.post("/api/search", params={"k": K}, content=data,
                                   headers={"content-type": "image/png", "x-filename": name})  # fmt: skip
            elapsed = time.perf_counter() - start
            response.raise_for_status()
            if i >= WARM_UP:
                times.append(elapsed)
    return ms_summary(times)


def load(base: str, pid: int, images: list[tuple[str, bytes]], ids: list[str], args) -> dict:
    """``args.clients`` threads x ``args.requests`` requests, images and ids alternating; RSS every 0.5 s."""
    process, rss, done = psutil.Process(pid), [], threading.Event()
    deadline = time.perf_counter() + args.deadline
    latencies, errors, lock = [], [], threading.Lock()

    def sample() -> None:
        while not done.is_set():
            rss.append(process.memory_info().rss / 2**20)
            done.wait(0.5)

    def client(c: int) -> None:
        with httpx2.Client(base_url=base, timeout=args.timeout) as http:
            for r in range(args.requests):
                if time.perf_counter() > deadline:
                    return
                i = c * args.requests + r
                start = time.perf_counter()
                try:
                    if i % 2 == 0:
                        name, data = images[i // 2 % len(images)]
                        response = http.post("/api/search", params={"k": K}, content=data,
                                             headers={"content-type": "image/png", "x-filename": name})  # fmt: skip
                    else:
                        response = http.post("/api/search", json={"id": ids[i // 2 % len(ids)], "k": K})
                    failed = None if response.status_code == 200 else f"HTTP {response.status_code}"
                except httpx2.HTTPError as exc:
                    failed = repr(exc)
                elapsed = time.perf_counter() - start
                with lock:
                    latencies.append(elapsed)
                    if failed:
                        errors.append(failed)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    threads = [threading.Thread(target=client, args=(c,)) for c in range(args.clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    return {"latency": ms_summary(latencies), "seconds": seconds, "rate": len(latencies) / seconds,
            "errors": errors, "rss": rss, "complete": len(latencies) == args.clients * args.requests}  # fmt: skip


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=REPO, help="a run folder (its dvc.yaml and artefacts)")
    parser.add_argument("--bits", type=int, default=64)
    parser.add_argument("--queries", type=int, default=100, help="timed single-image queries (parts 1 and 2)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=200, help="requests per client")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds, every request")
    parser.add_argument("--rounds", type=int, default=2, help="load tests, one after the other, same server")
    parser.add_argument("--deadline", type=float, default=300.0, help="seconds: a load round stops there")
    args = parser.parse_args()
    started = time.perf_counter()
    lines = ["```", f"$ {shlex.join(['python', 'bench/serve_load.py', *sys.argv[1:]])}"]

    def say(text: str) -> None:  # printed as measured, and kept for the report
        print(text, flush=True)
        lines.extend(text.split("\n"))

    retriever = Retriever.from_run(args.run, bits=args.bits)
    info = retriever.info
    query_ids = sorted(retriever.query_rows)[: args.queries]
    images = [(f"{item_id.replace('/', '_')}.png", png(retriever, item_id)) for item_id in query_ids]
    say(f"run {args.run}: {info['method']} at {info['bits']} bits, {info['index']} index of {info['count']:,} "
        f"items, {info['backbone']} at {info['image_size']} px; {len(images)} query images (PNG, "
        f"{np.mean([len(d) for _, d in images]):.0f} bytes on average), k = {K}; {os.cpu_count()} CPUs, "
        f"torch threads {torch.get_num_threads()}")  # fmt: skip

    say(f"\n1. Direct, warm process ({WARM_UP} warm-up queries)\n{HEADER}")
    split = direct(retriever, images)
    for name, s in split.items():
        say(line(name, s))

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "serve.log"
        server = start_server(args.run, args.bits, port, log)
        try:
            ready = wait_ready(server, base, log)
            say(f"\n2. Through the server ({base}, ready after {ready:.1f} s; {WARM_UP} warm-up POSTs)\n{HEADER}")
            through = sequential(base, images, args.timeout)
            say(line("POST /api/search (image, sequential)", through))
            database_ids = list(retriever.stored.ids)[:: max(1, len(retriever.stored.ids) // 200)]
            say(f"\n3. Load: {args.clients} clients x {args.requests} requests, half image uploads and half "
                f"JSON id searches, alternating; timeout {args.timeout:g} s per request; {args.rounds} rounds on "
                  "the same server (a leak would show as RSS still growing in round 2)")  # fmt: skip
            say(f"{HEADER}{'req/s':>8}{'errors':>7}  RSS MiB first/max/last")
            rounds = []
            for r in range(args.rounds):
                result = load(base, server.pid, images, database_ids, args)
                rss = result["rss"]
                say(f"{line(f'round {r + 1}', result['latency'])}{result['rate']:>8.1f}{len(result['errors']):>7}  "
                    f"{rss[0]:.0f} / {max(rss):.0f} / {rss[-1]:.0f}")  # fmt: skip
                if result["errors"]:
                    say(f"  errors: {', '.join(sorted(set(result['errors']))[:3])}")
                if not result["complete"]:
                    say(f"  stopped at the deadline ({args.deadline:g} s) after {result['latency']['n']} requests")
                rounds.append(result)
        finally:
            stop_server(server)
    code = server.returncode
    say(f"  server stopped: {f'signal {-code} (SIGTERM, as sent)' if code == -15 else f'exit status {code}'}")

    first, load1 = next(iter(split.values())), rounds[0]
    latency, errors, wall = load1["latency"], sum(len(r["errors"]) for r in rounds), time.perf_counter() - started
    rss_first, rss_max, rss_last = rounds[0]["rss"][0], max(max(r["rss"]) for r in rounds), rounds[-1]["rss"][-1]
    say(f"\nsummary: direct p50/p95 {first['p50']:.1f}/{first['p95']:.1f} ms; server p50/p95 {through['p50']:.1f}/"
        f"{through['p95']:.1f} ms; load (round 1) {load1['rate']:.1f} req/s, p50/p95/max {latency['p50']:.0f}/"
        f"{latency['p95']:.0f}/{latency['max']:.0f} ms; errors {errors} over {len(rounds)} rounds; server RSS "
        f"first/max/last {rss_first:.0f}/{rss_max:.0f}/{rss_last:.0f} MiB; wall time {wall:.0f} s")  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()):  # printed above, as measured
        write_report(BENCHMARKS, [*lines, "```"], "serve_load")
    trial = " (a trial run: into the copy in BENCH_DOCS)" if os.environ.get("BENCH_DOCS") else ""
    print(f"docs/benchmarks.md: the serve_load block written{trial}")


if __name__ == "__main__":
    main()
