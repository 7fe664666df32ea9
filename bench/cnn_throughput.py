"""Training throughput of ``hash.network: cnn`` against the bare backbone on the same batches.

Two loops over the same images, batches and model, side by side in one process, alternating (bare, ours,
bare, ours...) so that other work on the machine slows both alike:

- **ours**: ``graphhash.nrdh.cnn.train_cnn`` for one epoch, reading, decoding, resizing and augmenting every
  image as the hash stage does (DataLoader, ``hash.cnn.num_workers``), with its per-epoch checkpoint;
- **bare**: the same batches decoded, augmented (colour jitter included) and normalised beforehand and held
  in memory, then only the forward pass, Eq. 18's loss, the backward pass and the Adam step.

The ratio ours / bare is the share of the time spent on the network itself: >= 0.85 means loading and
augmentation are not the bottleneck. Images: CIFAR-10's first training images when ``../shared`` has the
tar, else scikit-learn's digits.

    python bench/cnn_throughput.py                       # whole network trained, crop + flip + jitter
    python bench/cnn_throughput.py --trainable 2 --augment
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import CIFAR_TAR, cifar_manifest, workers_arg

from graphhash.backbones import load_backbone
from graphhash.data.sources import open_source
from graphhash.nrdh import cnn
from graphhash.nrdh.hashnet import Targets, hash_loss
from graphhash.params.hash import CnnParams, HashParams
from graphhash.params.prepare import PrepareParams
from graphhash.pipeline.extract import resolve_device, resolve_workers
from graphhash.pipeline.prepare import prepare
from graphhash.runtime import tune_allocator


def training_images(count: int) -> tuple[object, list[str]]:
    if CIFAR_TAR.is_file():
        manifest = cifar_manifest(CIFAR_TAR, count=2 * count)
    else:
        manifest = prepare(PrepareParams(source="digits"))
    train = [i for i, is_train in zip(manifest.ids, manifest.split.train, strict=True) if is_train][:count]
    return open_source(manifest.source, manifest.path), train


def ours(params: HashParams, images: cnn.Images, targets: Targets, device: cnn.Device) -> float:
    torch.manual_seed(params.seed)
    model = cnn.build(load_backbone("efficientnet_lite0", "default", "", params.cnn.image_size), targets.fit.shape[1],
                      params.cnn, params.negative_slope)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        cnn.train_cnn(model, images, targets, params, device, cache=None, graph=None,
                      checkpoints=cnn.Checkpoints(Path(tmp), "bench"))  # fmt: skip
        return time.perf_counter() - start


def bare(params: HashParams, batches: list[tuple[torch.Tensor, torch.Tensor]], targets, device: cnn.Device) -> float:
    torch.manual_seed(params.seed)
    model = cnn.build(load_backbone("efficientnet_lite0", "default", "", params.cnn.image_size), targets.fit.shape[1],
                      params.cnn, params.negative_slope)  # fmt: skip
    model.to(device.device, memory_format=torch.channels_last).train()
    optimiser = torch.optim.Adam([{"params": model.tuned.parameters(), "lr": params.cnn.lr},
                                  {"params": model.head.parameters(), "lr": params.lr}])  # fmt: skip
    start = time.perf_counter()
    for rows, x in batches:
        with device.autocast():
            with torch.no_grad():
                x = model.frozen(x)
            fc = model(x).float()
        terms = hash_loss(fc, targets[rows], params)
        optimiser.zero_grad(set_to_none=True)
        terms["loss"].backward()
        optimiser.step()
        terms["loss"].item()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=640, help="training images (one epoch)")
    parser.add_argument("--trainable", type=int, default=18, help="hash.cnn.trainable (18: the whole network)")
    parser.add_argument("--augment", nargs="*", default=["crop", "flip", "jitter"])
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
    device_type = resolve_device(options.device, "--device")
    backbone = load_backbone("efficientnet_lite0", "default", "", options.image_size)
    device = cnn.Device.of(device_type, resolve_workers(options.num_workers, device_type), backbone)
    images = cnn.Images(source, ids, options.image_size, backbone.interpolation, options, params.seed)
    generator = torch.Generator().manual_seed(0)
    targets = Targets(torch.randn(len(ids), 64, generator=generator), torch.randn(len(ids), 64, generator=generator))
    targets = targets.to(device.device)

    # the batches train_cnn draws in its first epoch, decoded and augmented beforehand
    order = torch.Generator().manual_seed(params.seed)
    images.epoch = 0
    batches = []
    for rows in torch.tensor_split(torch.randperm(len(ids), generator=order), batches_per_epoch):
        items = [images[i] for i in rows.tolist()]
        pixels = torch.from_numpy(np.stack([pixels for _, pixels, _ in items]))
        factors = torch.from_numpy(np.stack([f for _, _, f in items])) if items[0][2] is not None else None
        batches.append((rows.to(device.device), device.images(pixels, factors)))  # augmented, normalised
    count = sum(len(rows) for rows, _ in batches)

    print(
        f"{len(ids)} images ({'CIFAR-10' if CIFAR_TAR.is_file() else 'digits'}), {options.image_size} px, batch "
        f"{options.batch_size}, {options.trainable} of 18 stages trained, augment {options.augment or 'none'}, "
        f"{device_type.type} ({device.precision}, {torch.get_num_threads()} threads, {device.num_workers} workers)"
    )
    times = {"bare": [], "ours": []}
    for _ in range(args.repeats):
        times["bare"].append(bare(params, batches, targets, device))
        times["ours"].append(ours(params, images, targets, device))
    rates = {name: count / statistics.median(found) for name, found in times.items()}
    for name, rate in rates.items():
        runs = ", ".join(f"{t:.1f}" for t in times[name])
        print(f"{name}: {rate:.1f} images/s (median of {args.repeats}; runs {runs} s)")
    print(f"ratio ours / bare: {rates['ours'] / rates['bare']:.3f}")


if __name__ == "__main__":
    main()
