"""CIFAR-10 features for the benchmarks, extracted once and cached outside git.

All 60,000 images through the project's own ``cifar10`` source and ``extract`` code (EfficientNet-Lite0
at 160 px; queries = the 10,000 test images, database = training set = the 50,000 train images), written
to ``bench/.cache/cifar10-efficientnet_lite0-160.h5``. About 7 minutes on 2 CPU cores; reruns reuse the file.

    python bench/cifar_features.py
"""

from __future__ import annotations

import logging
from pathlib import Path

from common import CIFAR_TAR, cifar_manifest, extract_params

from graphhash.pipeline.extract import extract
from graphhash.runtime import tune_allocator

CACHE = Path(__file__).resolve().parent / ".cache" / "cifar10-efficientnet_lite0-160.h5"


def cifar_features() -> Path:
    """The cached features file, extracting it first when missing."""
    if CACHE.is_file():
        return CACHE
    tune_allocator()
    manifest = cifar_manifest(CIFAR_TAR, count=0)  # all 60,000
    extract(manifest, extract_params(160, 64, "auto"), CACHE)
    return CACHE


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    print(cifar_features())
