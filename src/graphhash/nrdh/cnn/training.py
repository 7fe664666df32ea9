"""Training the CNN hash network (``hash.network: cnn``) and encoding every image with it."""

from __future__ import annotations

import io
import json
import logging
import math
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Literal

import numpy as np
import torch
from pydantic import Field

from graphhash.errors import GraphhashError
from graphhash.files.resume import Resume
from graphhash.hyperparameters import Configurable, Positive, Steps, checked
from graphhash.nrdh.cnn.images import Images, jitter, loader
from graphhash.nrdh.cnn.model import HashCNN
from graphhash.nrdh.hashnet import LOSS_TERMS, HashLearner, Targets, adam_step, close_epoch
from graphhash.progress import Progress
from graphhash.runtime import autocast, resolve_device, resolve_workers

log = logging.getLogger(__name__)

CACHE_LIMIT = 8 << 30  # bytes of frozen-stage outputs held in memory; beyond it the frozen stages run per batch
CHECKPOINT = "checkpoint.pt"  # the latest finished epoch, in the training run's resume folder
ENCODE_BATCH = 256  # images encoded at a time

Augmentation = Literal["crop", "flip", "jitter"]


@dataclass(frozen=True)
class GraphParts:
    """``hash.input: graph``: every item's own weight (N,) and neighbour sum (N, D) (``TrainingSet.graph_parts``)."""

    own: torch.Tensor
    context: torch.Tensor

    def __getitem__(self, rows: torch.Tensor) -> GraphParts:
        return GraphParts(self.own[rows], self.context[rows])


class CnnLearner(Configurable):
    """``hash.network: cnn``: the run's backbone with Table 2's head, trained on the training images.

    The head's loss, learning rate and seed are the ``HashLearner``'s (``hash.lr``, ``hash.seed``); these are the
    CNN's own hyperparameters (params.yaml's ``hash.cnn``).

    Args:
        trainable: backbone stages trained, counted from the end (efficientnet_lite0 has 18, vit_b_16 14); 0:
            frozen; the frozen part runs once per image when augment is empty
        augment: crop (random resized, area >= crop_scale) | flip (horizontal) | jitter (brightness, contrast,
            saturation x [0.6, 1.4]); []: none, as the paper
        crop_scale: with crop: the smallest fraction of the image's area a crop keeps
        image_size: images are resized to image_size x image_size (vit_b_16 with ImageNet weights: 224)
        steps: Adam steps, whatever the dataset's size; checkpointed after every epoch
        batch_size: images per Adam step
        lr: Adam's learning rate for the trained backbone stages (the head: hash.lr)
        device: auto: CUDA when present (bf16, channels-last), else CPU (fp32, same bytes every run)
        num_workers: DataLoader processes decoding images; auto: 0 on CPU, up to 8 with CUDA
    """

    @checked
    def __init__(
        self,
        *,
        trainable: Annotated[int, Field(ge=0, le=1000)] = 2,
        augment: Annotated[list[Augmentation], Field(max_length=3)] = [],  # noqa: B006 - read, never changed
        crop_scale: Annotated[float, Field(gt=0.0, le=1.0)] = 0.5,
        image_size: Annotated[int, Field(ge=16, le=1024)] = 96,
        steps: Steps = 1000,
        batch_size: Annotated[int, Field(ge=2, le=65536)] = 64,
        lr: Positive = 0.0001,
        device: Literal["auto", "cpu", "cuda"] = "auto",
        num_workers: Literal["auto"] | Annotated[int, Field(ge=0, le=64)] = "auto",
    ):
        self.trainable, self.augment, self.crop_scale = trainable, list(augment), crop_scale
        self.image_size, self.steps, self.batch_size, self.lr = image_size, steps, batch_size, lr
        self.device, self.num_workers = device, num_workers

    def torch_device(self) -> torch.device:
        return resolve_device(self.device, "hash.cnn.device")

    def workers(self) -> int:
        return resolve_workers(self.num_workers, self.torch_device())

    def images(self, read, ids: list[str], interpolation: str, seed: int) -> Images:
        """The items ``ids`` (``read`` gives an image by id) at ``image_size``, augmented as ``augment`` says."""
        return Images(read, ids, self.image_size, interpolation, augment=self.augment, crop_scale=self.crop_scale,
                      seed=seed)  # fmt: skip

    def fit(
        self,
        model: HashCNN,
        images: Images,
        targets: Targets,
        head: HashLearner,
        *,
        cache: torch.Tensor | None,
        graph: GraphParts | None,
        resume: Resume,
    ) -> list[dict[str, float]]:
        """Fit ``model`` on the training ``images`` to their ``targets`` for ``steps`` Adam steps, with ``head``'s
        loss, learning rate (for the head) and seed.

        ``cache``: the frozen stages' outputs of these images (only when there is no augmentation). Each epoch
        shuffles the items into N // batch_size equal batches; after every epoch the model, the optimiser and
        the random states are checkpointed in ``resume``, and a rerun resumes from the last one. Returns one
        record per epoch.
        """
        if len(images) < 2:
            raise GraphhashError("hash: batch normalisation needs at least 2 training items")
        device, workers = self.torch_device(), self.workers()
        optimiser = torch.optim.Adam([{"params": model.tuned.parameters(), "lr": self.lr},
                                      {"params": model.head.parameters(), "lr": head.lr}])  # fmt: skip
        order = torch.Generator().manual_seed(head.seed)
        batches = max(1, len(images) // self.batch_size)
        history: list[dict[str, float]] = []
        step = 0
        if resume.has(CHECKPOINT):
            saved = torch.load(resume.path(CHECKPOINT), map_location="cpu", weights_only=True)
            model.load_state_dict(saved["model"])
            optimiser.load_state_dict(saved["optimiser"])
            order.set_state(saved["order"])
            torch.set_rng_state(saved["rng"])
            history, step = json.loads(saved["history"]), int(saved["step"])
            log.info("hash: resuming after epoch %d (step %d of %d) from %s", len(history), step, self.steps,
                     resume.root)  # fmt: skip
        model.to(device, memory_format=torch.channels_last).train()
        targets = targets.to(device)
        sizes = [len(rows) for rows in torch.tensor_split(torch.arange(len(images)), batches)]
        done = lambda steps: (steps // batches) * len(images) + sum(sizes[: steps % batches])  # noqa: E731
        with Progress(done(self.steps), "images", "hash: cnn training", initial=done(step)) as bar:
            while step < self.steps:
                images.epoch = len(history)
                split = torch.tensor_split(torch.randperm(len(images), generator=order), batches)
                split = [rows.tolist() for rows in split[: self.steps - step]]
                source = ((torch.tensor(rows), None, None) for rows in split) if cache is not None else None
                sums = dict.fromkeys(LOSS_TERMS, 0.0)
                seen = 0
                for rows, pixels, factors in source or loader(images, split, device, workers):
                    with autocast(device):
                        if cache is not None:
                            x = cache[rows].to(device, non_blocking=True)
                        else:
                            with torch.no_grad():
                                adjust = None if factors is None else partial(jitter, factors=factors.to(device))
                                x = model.frozen(model.inputs(pixels, device, adjust))
                        parts = (graph.own[rows].to(device), graph.context[rows].to(device)) if graph else ()
                        fc = model(x, *parts).float()
                    terms = head.loss(fc, targets[rows.to(device)])
                    adam_step(optimiser, terms, sums, len(rows))
                    seen += len(rows)
                    step += 1
                    bar.update(len(rows))
                close_epoch(history, sums, seen, step, self.steps, "hash: cnn epoch", "lower hash.cnn.lr or hash.lr")
                buffer = io.BytesIO()
                torch.save({"model": model.state_dict(), "optimiser": optimiser.state_dict(),
                            "order": order.get_state(), "rng": torch.get_rng_state(), "step": step,
                            "history": json.dumps(history)}, buffer)  # fmt: skip
                resume.save(CHECKPOINT, buffer.getvalue())
        return history

    def frozen_outputs(self, model: HashCNN, images: Images) -> torch.Tensor | None:
        """The frozen stages' outputs for every image (N, ...) on the CPU, or None when there is augmentation (the
        stages see other pixels every epoch) or when they would exceed ``CACHE_LIMIT`` (then the training loop
        runs the frozen stages on every batch)."""
        if self.augment or len(model.frozen) == 0:
            return None  # the images change every epoch, or every stage is trained: nothing to reuse
        device, workers = self.torch_device(), self.workers()
        probe = images[0][1]  # (pixels of item 0)
        with torch.no_grad(), autocast(device):
            shape = model.frozen(model.inputs(torch.from_numpy(probe[None]), device)).shape[1:]
        size = len(images) * math.prod(shape) * 4
        if size > CACHE_LIMIT:
            log.info("hash: frozen outputs of %d images would take %.1f GiB: computed per batch", len(images),
                     size / 2**30)  # fmt: skip
            return None
        out = torch.empty((len(images), *shape), dtype=torch.float32)
        batches = [list(range(s, min(s + ENCODE_BATCH, len(images)))) for s in range(0, len(images), ENCODE_BATCH)]
        with Progress(len(images), "images", "hash: frozen stages") as bar, torch.no_grad(), autocast(device):
            for rows, pixels, _ in loader(images, batches, device, workers):
                out[rows] = model.frozen(model.inputs(pixels, device)).float().cpu()
                bar.update(len(rows))
        return out

    def encode(
        self, model: HashCNN, images: Images, *, cache: torch.Tensor | None = None, graph: GraphParts | None = None
    ) -> np.ndarray:
        """Binary codes (N, bits) as bools of every image (Eq. 19: bit = fc >= 0), batch norm in inference mode;
        ``cache`` and ``graph`` as in ``fit``, for the same N items."""
        device, workers = self.torch_device(), self.workers()
        images.epoch = -1
        codes = np.zeros((len(images), model.bits), dtype=bool)
        batches = [list(range(s, min(s + ENCODE_BATCH, len(images)))) for s in range(0, len(images), ENCODE_BATCH)]
        source = ((torch.tensor(rows), None, None) for rows in batches) if cache is not None else None
        with Progress(len(images), "images", "hash: cnn encoding") as bar:
            for rows, pixels, _ in source or loader(images, batches, device, workers):
                x = cache[rows] if cache is not None else pixels
                parts = (graph.own[rows], graph.context[rows]) if graph else ()
                codes[rows.numpy()] = model.codes(x, device, *parts)
                bar.update(len(rows))
        return codes
