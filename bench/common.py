"""Shared set-up for the benchmarks: a CIFAR-10 manifest of a given size, and extract params."""

from __future__ import annotations

import sys
from pathlib import Path

from graphhash.files.manifest import Manifest
from graphhash.params.extract import ExtractParams
from graphhash.params.prepare import PrepareParams
from graphhash.pipeline.prepare import prepare

REPO = Path(__file__).resolve().parents[1]
CIFAR_TAR = REPO.parent / "shared" / "datasets" / "cifar10-jpeg.tar"


def cifar_manifest(tar: Path, count: int) -> Manifest:
    """``count`` CIFAR-10 images, half train and half test, equal per class (read from the tar); 0: all."""
    if not tar.is_file():
        print(f"skipped: {tar} not found (the CIFAR-10 tar lives in ../shared/datasets)")
        sys.exit(0)
    params = PrepareParams(source="cifar10", path=str(tar), query_size=1, limit_per_class=count // 20)
    return prepare(params)


def workers_arg(value: str) -> int | str:
    """``--workers`` takes a count or ``auto`` (the stage's default)."""
    return value if value == "auto" else int(value)


def extract_params(image_size: int, batch_size: int, workers: int | str, backbone: str = "efficientnet_lite0"):
    return ExtractParams(backbone=backbone, image_size=image_size, batch_size=batch_size, num_workers=workers)
