"""Shared fixtures: small image trees generated with Pillow and numpy in pytest's tmp folders."""

from __future__ import annotations

import os
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits

from graphhash.runtime import single_threaded

REPO = Path(__file__).resolve().parents[1]

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
