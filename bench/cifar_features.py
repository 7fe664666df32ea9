"""CIFAR-10 features for the benchmarks, extracted once and cached outside git.

All 60,000 images through the project's own ``cifar10`` source and ``extract`` code (EfficientNet-Lite0
at 160 px; queries = the 10,000 test images, database = training set = the 50,000 train images), written
to ``bench/.cache/cifar10-efficientnet_lite0-160.h5``. About 7 minutes on 2 CPU cores; reruns reuse the file.

The 5,000-image subset (``subset_features``): ``prepare`` with ``split: random, limit_per_class: 500,
query_size: 50`` (500 images per class, 50 of them queries), and the full file's rows of those items (the
same model on the same images), with the subset's manifest beside it.

    python bench/cifar_features.py [--subset]
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
from common import CIFAR_TAR, cifar_manifest, extract_params

from graphhash.files.features import read_features, write_features
from graphhash.params.prepare import PrepareParams
from graphhash.pipeline.extract import extract
from graphhash.pipeline.prepare import prepare
from graphhash.runtime import tune_allocator

CACHE = Path(__file__).resolve().parent / ".cache" / "cifar10-efficientnet_lite0-160.h5"
SUBSET = CACHE.parent / "cifar10-subset-5000" / "features.h5"  # its manifest.json beside it


def cifar_features() -> Path:
    """The cached features file, extracting it first when missing."""
    if CACHE.is_file():
        return CACHE
    tune_allocator()
    manifest = cifar_manifest(CIFAR_TAR, count=0)  # all 60,000
    extract(manifest, extract_params(160, 64, "auto"), CACHE)
    return CACHE


def subset_features() -> Path:
    """The 5,000-image subset's features file (rows of the full one), written first when missing."""
    if SUBSET.is_file():
        return SUBSET
    full = read_features(cifar_features())
    cifar_manifest(CIFAR_TAR, count=0)  # says so and stops where the tar is missing
    params = PrepareParams(source="cifar10", path=str(CIFAR_TAR), split="random", limit_per_class=500, query_size=50)
    manifest = prepare(params)
    row = {item: i for i, item in enumerate(full.ids)}
    rows = np.array([row[item] for item in manifest.ids])
    masks = {name: getattr(manifest.split, name) for name in ("query", "database", "train")}
    attrs = {key: value for key, value in full.attrs.items() if key not in ("format", "modalities", "dims", "count")}
    SUBSET.parent.mkdir(parents=True, exist_ok=True)
    manifest.save(SUBSET.parent / "manifest.json")
    attrs["content_sha256"] = manifest.content_sha256
    write_features(SUBSET, [{"image": full.features[rows]}], dims={"image": full.features.shape[1]},
                   ids=manifest.ids, labels=manifest.labels, masks=masks, attrs=attrs)  # fmt: skip
    return SUBSET


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subset", action="store_true", help="the 5,000-image subset (extracting all first)")
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    print(subset_features() if parser.parse_args().subset else cifar_features())
