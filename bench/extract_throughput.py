"""Extraction throughput of the extract stage vs the bare model forward on the same batches.

The stage's figure covers everything it does (opening the source, loading the model, decoding and
resizing, normalisation, chunk files, the final HDF5); the bare figure is only ``model(x)`` on the same
batches, decoded and normalised beforehand. A ratio near 1 means decoding, loading and writing are not the
bottleneck. The one-off set-up inside the stage (indexing the tar, loading the model) is timed on its own
and printed for reference.

The command line and the table go into docs/benchmarks.md, between the ``extract_throughput-<count>`` markers
(one block per ``--count``).

    python bench/extract_throughput.py [--count 5000] [--repeats 2] [--image-size 160] [--batch-size 64]
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import BENCHMARKS, cifar_manifest, workers_arg, write_report

from graphhash.backbones import Backbone, load_backbone
from graphhash.data.sources import open_source
from graphhash.params.extract import ExtractParams
from graphhash.pipeline.extract import extract
from graphhash.pixels import to_pixels
from graphhash.runtime import autocast, precision, resolve_device, tune_allocator


def bare_forward(backbone: Backbone, device: torch.device, batches: list[torch.Tensor]) -> float:
    """Images per second of the model alone on ready, normalised, device-resident batches (uint8 NHWC pixels in,
    normalised channels-last tensors made beforehand); the backbone must be on ``device`` (``backbone.to``)."""
    ready = [backbone.inputs(b, device) for b in batches]
    with torch.inference_mode(), autocast(device):
        backbone.model(ready[0])  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for x in ready:
            backbone.model(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
    return sum(len(b) for b in batches) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=2, help="stage runs, each between two bare runs")
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--image-size", type=int, default=160)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=workers_arg, default="auto")
    parser.add_argument("--no-tune-allocator", action="store_true", help="measure with glibc's default malloc")
    args = parser.parse_args()
    tuned = not args.no_tune_allocator and tune_allocator()
    logging.basicConfig(level=logging.WARNING)

    manifest = cifar_manifest(args.count)
    params = ExtractParams(image_size=args.image_size, batch_size=args.batch_size, num_workers=args.workers,
                           backbone=args.backbone)  # fmt: skip
    start = time.perf_counter()
    source = open_source(manifest.source, manifest.path)
    backbone = load_backbone(params.backbone, params.weights, "", params.image_size)
    setup = time.perf_counter() - start
    device = resolve_device(params.device, "extract.device")
    backbone.to(device)
    pixels = np.stack([to_pixels(source.image(i), args.image_size, backbone.interpolation) for i in manifest.ids])
    batches = [torch.from_numpy(pixels[s : s + args.batch_size]) for s in range(0, len(pixels), args.batch_size)]

    # Alternate bare, stage, bare, ... so that drift in the machine's speed hits both alike; each stage
    # run is compared with the mean of the bare runs either side of it.
    bares, stages = [bare_forward(backbone, device, batches)], []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            extract(manifest, params, Path(tmp) / "features.h5")
            stages.append(time.perf_counter() - start)
        bares.append(bare_forward(backbone, device, batches))

    lines = [
        "```",
        f"$ {shlex.join(['python', 'bench/extract_throughput.py', *sys.argv[1:]])}",
        f"device: {device.type} ({precision(device)}), torch threads: {torch.get_num_threads()}, "
        f"allocator tuned: {tuned}",
        f"{args.backbone} at {args.image_size} px, batch {args.batch_size}, workers {args.workers}, "
        f"{len(manifest)} CIFAR-10 images from the tar, set-up (tar index, model load) {setup:.1f} s",
        f"{'run':>4} {'bare images/s':>14} {'stage images/s':>15} {'ratio':>6}",
    ]
    for i, seconds in enumerate(stages):
        bare, stage = (bares[i] + bares[i + 1]) / 2, len(manifest) / seconds
        lines.append(f"{i + 1:>4} {bare:>14.1f} {stage:>15.1f} {stage / bare:>6.3f}")
    bare, stage = float(np.mean(bares)), len(manifest) / float(np.mean(stages))
    lines += [f"all  {bare:>14.1f} {stage:>15.1f} {stage / bare:>6.3f}", "```"]
    write_report(BENCHMARKS, lines, f"extract_throughput-{args.count}")


if __name__ == "__main__":
    main()
