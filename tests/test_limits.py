"""Sizes are checked against the machine's memory before anything is allocated (issue 30, 1): one line naming the
key, what it would need and what there is, from ``check-params`` and from a stage before it reads its rows."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import REPO
from test_commands import GRAPHHASH

import graphhash.runtime
from graphhash.data.sources.vectors import LISTED_ITEM_BYTES, SyntheticSource
from graphhash.errors import GraphhashError
from graphhash.files.features import write_features
from graphhash.hyperparameters import HyperparameterError
from graphhash.params.extract import ExtractParams
from graphhash.params.graph import GraphParams
from graphhash.pipeline.neighbours import find_neighbours
from graphhash.runtime import available_memory, byte_size


def meminfo_available() -> int:
    """MemAvailable of /proc/meminfo, read here independently of graphhash.runtime."""
    fields = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    return int(fields["MemAvailable"].split()[0]) * 1024


def check_params(tmp_path: Path, changes: dict[str, dict]) -> subprocess.CompletedProcess:
    values = yaml.safe_load((REPO / "params.yaml").read_text())
    for section, keys in changes.items():
        for key, value in keys.items():
            *parents, last = key.split(".")
            place = values[section]
            for parent in parents:
                place = place[parent]
            place[last] = value
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(values))
    return subprocess.run([GRAPHHASH, "check-params"], cwd=tmp_path, capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(not Path("/proc/meminfo").exists(), reason="reads /proc/meminfo (Linux)")
def test_available_memory_is_at_most_what_the_kernel_says():
    assert 0 < available_memory() <= meminfo_available() * 1.05  # the two reads are a moment apart


def test_byte_size():
    assert [byte_size(n) for n in (512, 1536, 3 * 2**30 // 2, 5 * 2**50)] == ["512 B", "1.5 KiB", "1.5 GiB", "5.0 PiB"]


def test_check_params_refuses_a_synthetic_mixture_larger_than_memory(tmp_path):
    done = check_params(tmp_path, {"prepare": {"source": "synthetic", "synthetic.items": 10**12}})
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()  # one line, at once: nothing listed
    needed = 10**12 * (1280 * 4 + LISTED_ITEM_BYTES)
    assert "prepare.synthetic.items: 1,000,000,000,000 items of 1,280 dimensions" in line
    assert f"would need {byte_size(needed)} of memory" in line and "available here" in line


def test_check_params_refuses_an_extract_batch_larger_than_memory(tmp_path):
    done = check_params(tmp_path, {"extract": {"batch_size": 65536, "image_size": 1024}})
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: params.yaml: extract.batch_size: a forward pass of 65,536 images of 1024 x 1024")


def test_the_limit_is_where_the_memory_ends(monkeypatch):
    """1,000 items of 10 dimensions need 1,000 x (40 + LISTED_ITEM_BYTES) bytes: refused one byte short of that."""
    needed = 1000 * (10 * 4 + LISTED_ITEM_BYTES)
    monkeypatch.setattr(graphhash.runtime, "available_memory", lambda: needed)
    SyntheticSource(items=1000, dimension=10, classes=10)
    monkeypatch.setattr(graphhash.runtime, "available_memory", lambda: needed - 1)
    with pytest.raises(HyperparameterError, match=r"^items: 1,000 items of 10 dimensions"):
        SyntheticSource(items=1000, dimension=10, classes=10)
    pixels = 64 * 3 * 160 * 160 * 4  # EfficientNet-Lite0's activations are 32 times its float32 input
    monkeypatch.setattr(graphhash.runtime, "available_memory", lambda: 32 * pixels)
    ExtractParams(batch_size=64)
    with pytest.raises(ValueError, match=r"batch_size: a forward pass of 65 images"):
        ExtractParams(batch_size=65)


def test_a_stage_stops_before_reading_rows_that_do_not_fit(tmp_path, monkeypatch):
    n, dim = 50, 8
    path = tmp_path / "features.h5"
    train = np.arange(n) >= 10
    write_features(path, [{"image": np.ones((n, dim), np.float32)}], dims={"image": dim},
                   ids=[str(i) for i in range(n)], labels=np.zeros(n, int),
                   masks={"query": ~train, "database": train, "train": train}, attrs={"backbone": "none"})  # fmt: skip
    needed = 2 * 40 * dim * 4  # the neighbours stage: the 40 training rows and their unit copy
    monkeypatch.setattr(graphhash.runtime, "available_memory", lambda: needed - 1)
    with pytest.raises(GraphhashError, match=rf"^{path}: the training rows and their unit copy: 40 rows of 8 dim"):
        find_neighbours(path, GraphParams(), tmp_path / "neighbours.h5")
    assert not (tmp_path / "neighbours.h5").exists()
    monkeypatch.setattr(graphhash.runtime, "available_memory", lambda: 10**12)
    find_neighbours(path, GraphParams(), tmp_path / "neighbours.h5")
    assert (tmp_path / "neighbours.h5").exists()
