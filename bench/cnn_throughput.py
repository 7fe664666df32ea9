"""Training throughput of ``hash.network: cnn`` against the bare backbone on the same batches.

Two loops over the same images, batches and model, side by side in one process, alternating (bare, ours,
bare, ours...) so that other work on the machine slows both alike:

- **ours**: ``graphhash.nrdh.cnn.training.CnnLearner.fit`` for one epoch, reading, decoding, resizing and augmenting
  every image as the hash stage does (DataLoader, ``hash.cnn.num_workers``), with its per-epoch checkpoint;
- **bare**: the same batches decoded, augmented (colour jitter included) and normalised beforehand and held
  in memory, then only the forward pass, Eq. 18's loss (``HashLearner.loss``), the backward pass and the Adam step.

The ratio ours / bare is the share of the time spent on the network itself: >= 0.85 means loading and
augmentation are not the bottleneck. Images: CIFAR-10's first training images when ``../shared`` has the
tar, else scikit-learn's digits.

The command line and a one-row table in the columns of docs/benchmarks.md's table go there, between the
``cnn_throughput`` markers; a run with other options than the defaults gets its own block, named after them
(``cnn_throughput-1920`` for ``--images 1920``, ``cnn_throughput-1280-160px`` for ``--images 1280 --image-size
160``...).

    python bench/cnn_throughput.py                       # whole network trained, crop + flip + jitter
    python bench/cnn_throughput.py --trainable 2 --augment
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
from common import BENCHMARKS, CIFAR_TAR, cifar_manifest, workers_arg, write_report

from graphhash.backbones import load_backbone
from graphhash.data.sources import Source, open_source
from graphhash.files.resume import Resume
from graphhash.nrdh.cnn.images import Images, jitter
from graphhash.nrdh.cnn.model import HashCNN
from graphhash.nrdh.cnn.training import CnnLearner
from graphhash.nrdh.hashnet import HashLearner, Targets
from graphhash.params.hash import CnnParams, HashParams
from graphhash.params.prepare import PrepareParams
from graphhash.pipeline.prepare import prepare
from graphhash.runtime import autocast, precision, tune_allocator

AUGMENT = ["crop", "flip", "jitter"]
STAGES = 18  # efficientnet_lite0's stages


def training_images(count: int) -> tuple[Source, list[str]]:
    manifest = cifar_manifest(2 * count) if CIFAR_TAR.is_file() else prepare(PrepareParams(source="digits"))
    train = [i for i, is_train in zip(manifest.ids, manifest.split.train, strict=True) if is_train][:count]
    return open_source(manifest.source, manifest.path), train


def network(head: HashLearner, cnn: CnnLearner, bits: int) -> HashCNN:
    """A fresh network, seeded as the hash stage seeds it."""
    torch.manual_seed(head.seed)
    backbone = load_backbone("efficientnet_lite0", "default", "", cnn.image_size)
    return HashCNN.build(backbone, bits, trainable=cnn.trainable, negative_slope=head.negative_slope)


def ours(head: HashLearner, cnn: CnnLearner, images: Images, targets: Targets) -> float:
    model = network(head, cnn, targets.fit.shape[1])
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        cnn.fit(model, images, targets, head, cache=None, graph=None, resume=Resume(Path(tmp) / "model", "bench"))
        return time.perf_counter() - start


def bare(head: HashLearner, cnn: CnnLearner, batches: list[tuple[torch.Tensor, torch.Tensor]],
         targets: Targets) -> float:  # fmt: skip
    device = cnn.torch_device()
    model = network(head, cnn, targets.fit.shape[1])
    model.to(device, memory_format=torch.channels_last).train()
    optimiser = torch.optim.Adam([{"params": model.tuned.parameters(), "lr": cnn.lr},
                                  {"params": model.head.parameters(), "lr": head.lr}])  # fmt: skip
    start = time.perf_counter()
    for rows, x in batches:
        with autocast(device):
            with torch.no_grad():
                x = model.frozen(x)
            fc = model(x).float()
        terms = head.loss(fc, targets[rows])
        optimiser.zero_grad(set_to_none=True)
        terms["loss"].backward()
        optimiser.step()
        terms["loss"].item()
    return time.perf_counter() - start


def block_name(args: argparse.Namespace) -> str:
    """The report's block: ``cnn_throughput``, then each option that differs from its default."""
    parts = [] if args.images == 640 else [str(args.images)]
    if args.image_size != CnnParams().image_size:
        parts.append(f"{args.image_size}px")
    if args.batch_size != CnnParams().batch_size:
        parts.append(f"batch{args.batch_size}")
    if args.trainable != STAGES:
        parts.append(f"trainable{args.trainable}")
    if args.augment != AUGMENT:
        parts.append("augment-" + ("-".join(args.augment) or "none"))
    if args.workers != "auto":
        parts.append(f"workers{args.workers}")
    if args.device != "auto":
        parts.append(args.device)
    return "-".join(["cnn_throughput", *parts])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=640, help="training images (one epoch)")
    parser.add_argument("--trainable", type=int, default=STAGES, help="hash.cnn.trainable (18: the whole network)")
    parser.add_argument("--augment", nargs="*", default=AUGMENT)
    parser.add_argument("--image-size", type=int, default=CnnParams().image_size)
    parser.add_argument("--batch-size", type=int, default=CnnParams().batch_size)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=workers_arg, default="auto", help="hash.cnn.num_workers")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    tune_allocator()
    source, ids = training_images(args.images)
    batches_per_epoch = len(ids) // args.batch_size
    options = CnnParams(trainable=args.trainable, augment=args.augment, image_size=args.image_size,
                        batch_size=args.batch_size, steps=batches_per_epoch, device=args.device,
                        num_workers=args.workers)  # fmt: skip
    params = HashParams(network="cnn", input="features", cnn=options)
    head = HashLearner(**params.hyperparameters(HashLearner))
    cnn = CnnLearner(**params.cnn.hyperparameters(CnnLearner))
    device, workers = cnn.torch_device(), cnn.workers()
    backbone = load_backbone("efficientnet_lite0", "default", "", cnn.image_size)
    images = cnn.images(source.image, ids, backbone.interpolation, head.seed)
    generator = torch.Generator().manual_seed(0)
    targets = Targets(torch.randn(len(ids), 64, generator=generator), torch.randn(len(ids), 64, generator=generator))

    # the batches CnnLearner.fit draws in its first epoch, decoded and augmented beforehand
    order = torch.Generator().manual_seed(head.seed)
    images.epoch = 0
    batches = []
    for rows in torch.tensor_split(torch.randperm(len(ids), generator=order), batches_per_epoch):
        items = [images[i] for i in rows.tolist()]
        pixels = torch.from_numpy(np.stack([pixels for _, pixels, _ in items]))
        factors = torch.from_numpy(np.stack([f for _, _, f in items])) if items[0][2] is not None else None
        adjust = None if factors is None else partial(jitter, factors=factors.to(device))
        batches.append((rows.to(device), backbone.inputs(pixels, device, adjust)))  # augmented, normalised
    count = sum(len(rows) for rows, _ in batches)
    on_device = targets.to(device)

    data = "CIFAR-10" if CIFAR_TAR.is_file() else "digits"
    print(f"{len(ids)} images ({data}), {cnn.image_size} px, batch {cnn.batch_size}, {cnn.trainable} of {STAGES} "
          f"stages trained, augment {cnn.augment or 'none'}, {device.type} ({precision(device)}, "
          f"{torch.get_num_threads()} threads, {workers} workers)", flush=True)  # fmt: skip
    times: dict[str, list[float]] = {"bare": [], "ours": []}
    for _ in range(args.repeats):
        times["bare"].append(bare(head, cnn, batches, on_device))
        times["ours"].append(ours(head, cnn, images, targets))
    rates = {name: count / statistics.median(found) for name, found in times.items()}
    for name, rate in rates.items():
        runs = ", ".join(f"{t:.1f}" for t in times[name])
        print(f"{name}: {rate:.1f} images/s (median of {args.repeats}; runs {runs} s)")
    print(f"ratio ours / bare: {rates['ours'] / rates['bare']:.3f}\n", flush=True)

    loader = f", {workers} DataLoader worker{'s' if workers > 1 else ''}" if workers else ""
    where = "" if device.type == "cpu" else f", {device.type} {precision(device)}"
    colour = "on the batch, one affine map" if "jitter" in cnn.augment else "none"
    cells = [f"{len(ids):,}, {cnn.image_size} px, {cnn.trainable} of {STAGES}{loader}{where}", colour,
             *(f"{rates[name]:.1f} images/s ({statistics.median(times[name]):.1f} s)" for name in ("bare", "ours")),
             f"{rates['ours'] / rates['bare']:.3f}"]  # fmt: skip
    command = shlex.join(["python", "bench/cnn_throughput.py", *sys.argv[1:]])
    lines = [f"`$ {command}`: {data}, augment {' + '.join(cnn.augment) or 'none'}, {device.type} "
             f"({precision(device)}, {torch.get_num_threads()} threads), median of {args.repeats} epochs each "
             "(seconds per epoch in brackets):", "",
             "| images, size, stages trained, loader | colour jitter | bare | `CnnLearner.fit` | ratio |",
             "| --- | --- | ---: | ---: | ---: |", f"| {' | '.join(cells)} |"]  # fmt: skip
    write_report(BENCHMARKS, lines, block_name(args))


if __name__ == "__main__":
    main()
