"""CIFAR-10 features for the benchmarks, extracted once and cached outside git.

All 60,000 images through the project's own ``cifar10`` source and ``extract`` code (EfficientNet-Lite0
at 160 px; queries = the 10,000 test images, database = training set = the 50,000 train images), written
to ``bench/.cache/cifar10-efficientnet_lite0-160.h5``. About 7 minutes on 2 CPU cores; reruns reuse the file.

    python bench/cifar_features.py
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

from common import CIFAR_TAR, extract_params

from graphhash.extract import extract
from graphhash.prepare import prepare
from graphhash.runtime import tune_allocator

CACHE = Path(__file__).resolve().parent / ".cache" / "cifar10-efficientnet_lite0-160.h5"


def cifar_features() -> Path:
    """The cached features file, extracting it first when missing."""
    if CACHE.is_file():
        return CACHE
    if not CIFAR_TAR.is_file():
        raise SystemExit(f"skipped: {CIFAR_TAR} not found (the CIFAR-10 tar lives in ../shared/datasets)")
    tune_allocator()
    manifest = prepare(
        SimpleNamespace(
            source="cifar10",
            path=str(CIFAR_TAR),
            seed=0,
            split="auto",
            query_size=1,
            train="database",
            train_size=0.5,
            limit_per_class=0,
        )
    )
    extract(manifest, extract_params(160, 64, "auto"), CACHE)
    return CACHE


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    print(cifar_features())
