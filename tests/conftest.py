"""Shared fixtures: small image trees generated with Pillow and numpy in pytest's tmp folders."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits

from graphhash.runtime import single_threaded

REPO = Path(__file__).resolve().parents[1]
# The files a project of the pipeline copies from the repository, besides its code folders: the pipeline, what DVC
# leaves out of folder hashes, and the (empty) changes file that graphhash add and remove write.
PIPELINE_FILES = ("dvc.yaml", ".dvcignore", "data/changes.jsonl")

# The formats Pillow picks from each extension, written with settings that keep colours exact where possible.
_SAVE_ARGS = {".jpg": {"quality": 95}, ".jpeg": {"quality": 95}, ".webp": {"lossless": True}}


def noise_image(seed: int, size: tuple[int, int] = (8, 8)) -> Image.Image:
    """An RGB image of random pixels; distinct seeds give distinct images (and distinct file bytes)."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), mode="RGB")


def save_image(path: Path, img: Image.Image) -> Path:
    """Save ``img`` at ``path`` (creating folders) in the format its extension names."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **_SAVE_ARGS.get(path.suffix.lower(), {}))
    return path


@pytest.fixture
def make_tree() -> Callable[[Path, list[str]], Path]:
    """Write a noise image at each '/'-relative path under ``root``; non-image names get a few text bytes."""

    def make(root: Path, rel_paths: list[str]) -> Path:
        for i, rel in enumerate(rel_paths):
            path = root / rel
            if path.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp", ".webp"):
                save_image(path, noise_image(i))
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"not an image\n")
        return root

    return make


CIFAR_CLASSES = ("bird", "cat", "dog")


def cifar_paths(n_train: int, n_test: int) -> list[str]:
    """Relative paths of a tiny CIFAR-10-style JPEG layout with ``n_train``/``n_test`` items per class."""
    paths = []
    for cls in CIFAR_CLASSES:
        paths += [f"cifar10/train/{cls}/{cls}_{i:02d}.jpg" for i in range(n_train)]
        paths += [f"cifar10/test/{cls}/{cls}_{i:02d}.jpg" for i in range(n_test)]
    return paths


@pytest.fixture
def cifar_dir(tmp_path: Path, make_tree) -> Path:
    """Folder holding ``cifar10/{train,test}/<class>/*.jpg``: 4 train and 2 test items for each of 3 classes."""
    return make_tree(tmp_path / "extracted", cifar_paths(4, 2))


def make_tar(src: Path, dest: Path, arcname: str = "cifar10", mode: str = "w") -> Path:
    """Archive the folder ``src`` as ``arcname`` inside the tar ``dest``."""
    with tarfile.open(dest, mode) as tar:
        tar.add(src, arcname=arcname)
    return dest


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module's tests with torch on one thread (restored afterwards)."""
    with single_threaded():
        yield


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    """200 real 64-d feature vectors (sklearn's bundled 8x8 digits)."""
    return torch.from_numpy(load_digits().data[:200].astype(np.float32))


@pytest.fixture
def adam_steps(monkeypatch) -> list[int]:
    """Counts the optimiser steps taken (one entry per ``torch.optim.Adam.step`` call), steps still taken."""
    calls: list[int] = []
    step = torch.optim.Adam.step

    def counted(self, *args, **kwargs):
        calls.append(1)
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", counted)
    return calls


def dvc_env(cwd: Path) -> dict[str, str]:
    """The environment for git and dvc in a temporary repository: this Python's tools first, a git identity
    (dvc exp needs commits), and DVC's site cache kept beside the repository."""
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",  # stages run this python
        "GIT_AUTHOR_NAME": "test",
        "GIT_AUTHOR_EMAIL": "test@example.invalid",
        "GIT_COMMITTER_NAME": "test",
        "GIT_COMMITTER_EMAIL": "test@example.invalid",
        "DVC_SITE_CACHE_DIR": str(cwd.parent / "dvc-site-cache"),
        "DVC_NO_ANALYTICS": "1",
    }


def run_in(cwd: Path, *cmd: str) -> str:
    """Run git, dvc (this environment's) or graphhash in ``cwd``; a failure shows its output."""
    import subprocess

    tools = Path(sys.executable).parent
    if cmd[0] in ("dvc", "graphhash"):
        cmd = (str(tools / cmd[0]), *cmd[1:])
    done = subprocess.run(cmd, cwd=cwd, env=dvc_env(cwd), capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def new_project(work: Path, params: dict) -> Path:
    """A git + DVC repository at ``work`` holding this project's pipeline, with ``params`` merged into the
    default params.yaml (written from the schema), committed."""
    import shutil

    from graphhash.params.all import check, defaults, render
    from graphhash.presets import merged

    work.mkdir(parents=True)
    run_in(work, "git", "init", "-q")
    run_in(work, "dvc", "init", "-q")
    run_in(work, "dvc", "config", "core.analytics", "false")
    for name in PIPELINE_FILES:
        (work / name).parent.mkdir(exist_ok=True)
        shutil.copy(REPO / name, work / name)
    for name in ("stages", "src", "presets"):
        shutil.copytree(REPO / name, work / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copytree(REPO / ".dvc" / "plots", work / ".dvc" / "plots", ignore=shutil.ignore_patterns("vega.js"))
    run_in(work, "dvc", "config", "plots.html_template", "plots/page.html")  # the offline page, as .dvc/config has
    (work / "params.yaml").write_text(render(check(merged(defaults(), params))), encoding="utf-8")
    run_in(work, "git", "add", "-A")
    run_in(work, "git", "commit", "-qm", "pipeline")
    return work


# The defaults (kNN graphs, graph inputs for the hash network: queries are placed on the graph too) on 200
# digits, trained briefly: a real run to search in.
SEARCH_RUN = {
    "prepare": {"limit_per_class": 20, "query_size": 2},
    "extract": {"image_size": 32, "batch_size": 50},
    "codes": {"bits": [16, 24]},
    "represent": {"steps": 60, "graphs_per_step": 16},
    "hash": {"steps": 60, "batch_size": 32},
    "baselines": {"methods": ["itq"]},
    "evaluate": {"map_at": [10], "figure_queries": 0, "neighbours": 5},
}


@pytest.fixture(scope="session")
def search_run(tmp_path_factory) -> Path:
    """A reproduced run of the pipeline (``dvc repro``) with an index per code length, for search tests."""
    work = new_project(tmp_path_factory.mktemp("search") / "repo", SEARCH_RUN)
    run_in(work, "dvc", "repro", "-q")
    return work


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(run: Path, *options: str, output=subprocess.PIPE) -> Iterator[str]:
    """``graphhash serve`` of ``run`` on a free port of 127.0.0.1 with ``options``, its output to ``output``; yields its
    URL once ``/api/info`` answers (the process must not exit before), and stops it afterwards."""
    import httpx2

    port = free_port()
    graphhash = str(Path(sys.executable).parent / "graphhash")
    process = subprocess.Popen([graphhash, "serve", "--port", str(port), *options], cwd=run, stdout=output,
                               stderr=subprocess.STDOUT, text=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx2.get(f"{url}/api/info", timeout=1).status_code == 200:
                    break
            except httpx2.HTTPError:
                time.sleep(0.1)
            assert process.poll() is None, "graphhash serve exited before answering"
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def reference_ranking(queries: np.ndarray, database: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Brute force: distances from unpacked bits, then a sort by (distance, database index)."""
    q = np.unpackbits(queries, axis=1).astype(np.int32)
    d = np.unpackbits(database, axis=1).astype(np.int32)
    distances = (q[:, None, :] != d[None, :, :]).sum(axis=2)
    order = np.array([np.lexsort((np.arange(len(database)), row))[:k] for row in distances])
    return order, np.take_along_axis(distances, order, 1)
