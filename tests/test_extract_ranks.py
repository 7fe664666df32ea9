"""``extract`` as several ranks (torch.distributed, gloo on CPU) on real images: the merged file against a
single process, disjoint shards, a killed rank and its resume, ranks that disagree, torchrun across "nodes".

Values: a rank computes its batches exactly as a single process with the same number of torch threads
does, so the merged file is compared bit for bit with such a run (and, when the thread counts differ, to
float32 rounding with one of the default thread count).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from graphhash.errors import GraphhashError
from graphhash.files.features import read_features
from graphhash.files.manifest import Manifest
from graphhash.params.extract import ExtractParams
from graphhash.params.prepare import PrepareParams
from graphhash.pipeline.extract import extract
from graphhash.pipeline.prepare import prepare
from graphhash.pipeline.ranks import Ranks

REPO = Path(__file__).resolve().parents[1]
STAGE = [sys.executable, str(REPO / "stages" / "extract.py")]
EXTRACT = {"weights": "none", "image_size": 48, "batch_size": 8, "num_workers": 0, "device": "cpu"}
PARAMS_YAML = "extract:\n  weights: none\n  image_size: {size}\n  batch_size: 8\n  device: cpu\n  ranks: {ranks}\n"


def digits(items_per_class: int) -> Manifest:
    return prepare(PrepareParams(source="digits", query_size=2, limit_per_class=items_per_class))


def single_process(manifest: Manifest, dest: Path, threads: int, **overrides) -> Path:
    """The reference: one process, no ranks, ``threads`` torch threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        extract(manifest, ExtractParams(**(EXTRACT | overrides)), dest)
    finally:
        torch.set_num_threads(before)
    return dest


def assert_same_file(path: Path, reference: Path) -> None:
    """Every dataset equal, every attribute equal."""

    def datasets(f: h5py.File) -> list[str]:
        found: list[str] = []
        f.visititems(lambda name, item: found.append(name) if isinstance(item, h5py.Dataset) else None)
        return sorted(found)

    with h5py.File(path, "r") as got, h5py.File(reference, "r") as want:
        assert datasets(got) == datasets(want) and "features/image" in datasets(want)
        for name in datasets(want):
            np.testing.assert_array_equal(got[name][()], want[name][()], err_msg=name)
        assert {k: str(v) for k, v in got.attrs.items()} == {k: str(v) for k, v in want.attrs.items()}


def test_shards_are_disjoint_and_cover_every_batch_once():
    starts = range(0, 203, 8)
    for world in (1, 2, 3, 7, 40):
        shards = [list(Ranks(rank=r, world=world).shard(starts)) for r in range(world)]
        flat = [s for shard in shards for s in shard]
        assert sorted(flat) == list(starts) and len(flat) == len(starts)
        assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_two_gloo_ranks_write_the_single_process_file(tmp_path, capfd):
    """Two ranks (one thread each on this machine's cores) = one process with one thread, bit for bit."""
    manifest = digits(20)  # 200 items, 25 batches: 13 for rank 0, 12 for rank 1
    extract(manifest, ExtractParams(**EXTRACT, ranks=2), tmp_path / "ranks.h5")
    log = capfd.readouterr().err
    assert "rank 0 of 2: extract: 104/104 items" in log and "rank 1 of 2: extract: 96/96 items" in log
    threads = max(1, (os.cpu_count() or 1) // 2)
    assert_same_file(tmp_path / "ranks.h5", single_process(manifest, tmp_path / "one.h5", threads))
    default = single_process(manifest, tmp_path / "default.h5", torch.get_num_threads())
    np.testing.assert_allclose(
        read_features(tmp_path / "ranks.h5").features, read_features(default).features, rtol=1e-5, atol=1e-9
    )
    assert not list(tmp_path.glob(".*")), "the chunk folder is gone after the merge"


class Stage:
    """The real stage script in ``work`` (params.yaml there), its stderr read line by line as it runs."""

    def __init__(self, work: Path):
        self.proc = subprocess.Popen(
            [*STAGE, "--manifest", "data/manifest.json", "--features", "data/features.h5"],
            cwd=work,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stderr), daemon=True)
        self.reader.start()

    def pid_of(self, rank: int, world: int, deadline: float) -> int:
        pattern = re.compile(rf"rank {rank} of {world} \(pid (\d+)\)")
        while time.monotonic() < deadline and self.proc.poll() is None:
            found = [m for line in list(self.lines) if (m := pattern.search(line))]
            if found:
                return int(found[0].group(1))
            time.sleep(0.05)
        raise AssertionError("the rank never started:\n" + "".join(self.lines))

    def wait(self) -> tuple[int, str]:
        code = self.proc.wait(timeout=120)
        self.reader.join(timeout=10)
        return code, "".join(self.lines)


def test_a_killed_rank_fails_the_run_in_one_line_and_the_rerun_resumes_every_shard(tmp_path):
    work = tmp_path / "work"
    (work / "data").mkdir(parents=True)
    (work / "params.yaml").write_text(PARAMS_YAML.format(size=96, ranks=2))
    manifest = digits(40)  # 400 items, 50 batches
    manifest.save(work / "data" / "manifest.json")
    resume = work / "data" / ".features.h5.resume"

    stage = Stage(work)
    victim = stage.pid_of(1, 2, time.monotonic() + 120)
    deadline = time.monotonic() + 120
    while len(list(resume.glob("*/rows-*.npz"))) < 4 and time.monotonic() < deadline and stage.proc.poll() is None:
        time.sleep(0.02)
    os.kill(victim, signal.SIGKILL)
    code, err = stage.wait()
    done = len(list(resume.glob("*/rows-*.npz")))
    assert 4 <= done < 50, "the kill must land mid-way"
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert code == 2 and errors == [
        "error: extract.ranks: rank 1 of 2 failed: killed by SIGKILL; rerun to resume every shard from its "
        "finished chunks"
    ], err
    assert "Traceback" not in err
    assert not (work / "data" / "features.h5").exists()

    code, err = Stage(work).wait()
    assert code == 0, err
    resumed = [int(m.group(1)) for m in re.finditer(r"rank \d of 2: resuming: (\d+) of 2[45] batches", err)]
    assert sum(resumed) == done, err  # every saved chunk of either shard is reused, none recomputed
    threads = max(1, (os.cpu_count() or 1) // 2)
    reference = single_process(manifest, tmp_path / "one.h5", threads, image_size=96)
    assert_same_file(work / "data" / "features.h5", reference)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun_nodes(tmp_path: Path, sizes: tuple[int, int]) -> list[subprocess.CompletedProcess]:
    """Two torchrun "machines" (one rank each), each in its own folder with its own params.yaml, sharing
    the data folder as machines share a file system, started with the README's multi-node command."""
    shared = tmp_path / "shared"
    shared.mkdir()
    digits(10).save(shared / "manifest.json")
    port = free_port()
    procs = []
    for node, size in enumerate(sizes):
        work = tmp_path / f"node{node}"
        work.mkdir()
        (work / "params.yaml").write_text(PARAMS_YAML.format(size=size, ranks=1))
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
               "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "graphhash-test",
               str(REPO / "stages" / "extract.py"), "--manifest", str(shared / "manifest.json"),
               "--features", str(shared / "features.h5")]  # fmt: skip
        procs.append(subprocess.Popen(cmd, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = []
    for proc in procs:
        out, _ = proc.communicate(timeout=180)
        outputs.append(subprocess.CompletedProcess(proc.args, proc.returncode, out))
    return outputs


def test_torchrun_over_two_nodes_writes_the_single_process_file(tmp_path):
    runs = torchrun_nodes(tmp_path, (48, 48))
    assert [r.returncode for r in runs] == [0, 0], runs[0].stdout + runs[1].stdout
    # one rank per node: each gets every core, as a single process does
    reference = single_process(digits(10), tmp_path / "one.h5", torch.get_num_threads())
    assert_same_file(tmp_path / "shared" / "features.h5", reference)


def test_ranks_with_different_params_refuse_to_merge(tmp_path):
    runs = torchrun_nodes(tmp_path, (48, 40))
    assert all(r.returncode != 0 for r in runs)
    for run in runs:
        errors = [line for line in run.stdout.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and "the ranks were started with different params or manifests" in errors[0], run.stdout
    assert not (tmp_path / "shared" / "features.h5").exists()
    assert not list((tmp_path / "shared").glob(".features.h5.resume/*/rows-*.npz")), "no rank saved any chunk"


@pytest.mark.skipif(torch.cuda.device_count() >= 2, reason="needs a machine with fewer than 2 GPUs")
def test_more_cuda_ranks_than_gpus_is_one_line_naming_the_rank(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(GraphhashError, match=r"^rank 1 of 2: local rank 1 has no GPU of its own \(1 here\)"):
        Ranks.join(torch.device("cuda"))


def test_an_error_in_a_rank_is_its_message_in_one_line_naming_the_rank(tmp_path):
    """A rank's own error (here a weights file that does not exist) comes back as one line, no traceback."""
    params = ExtractParams(**EXTRACT, ranks=2, weights_path=str(tmp_path / "nope.pth"))
    with pytest.raises(GraphhashError) as info:
        extract(digits(6), params, tmp_path / "f.h5")
    message = str(info.value)
    assert re.fullmatch(
        r"extract\.ranks: rank [01] of 2 failed: extract\.weights_path: .*nope\.pth.*; rerun .*", message
    )
    assert "\n" not in message and "Traceback" not in message
    assert not (tmp_path / "f.h5").exists()


def test_ranks_beyond_the_cores_or_the_batches_are_refused_before_any_starts(tmp_path, monkeypatch):
    """1,000 ranks on a 2-core machine were accepted and started (issue 30, 4): one line, nothing started, nothing
    written; extract.oversubscribe allows more ranks than cores, never more than batches."""
    manifest = digits(3)  # 30 items: 4 batches of 8
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    started = []
    monkeypatch.setattr("graphhash.pipeline.extract.launch", lambda *args, **kwargs: started.append(args))
    for ranks, oversubscribe, message in (
        (
            3,
            False,
            "extract.ranks: 3 ranks on 2 CPU cores; set extract.oversubscribe: true to run more ranks than cores",
        ),
        (1000, True, "extract.ranks: 1000 ranks for 30 items in 4 batches of 8: at most one rank per batch"),
        (5, True, "extract.ranks: 5 ranks for 30 items in 4 batches of 8: at most one rank per batch"),
    ):
        with pytest.raises(GraphhashError) as info:
            extract(manifest, ExtractParams(**EXTRACT, ranks=ranks, oversubscribe=oversubscribe), tmp_path / "f.h5")
        assert str(info.value) == message
    assert started == [] and list(tmp_path.iterdir()) == []
    extract(manifest, ExtractParams(**EXTRACT, ranks=4, oversubscribe=True), tmp_path / "f.h5")
    assert len(started) == 1  # within both limits: launched
