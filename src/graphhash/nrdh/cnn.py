"""Stage 2 of NRDH as the paper trains it: a CNN on the images, fitted to the node representations.

The paper fine-tunes ResNet-18 with its fc layers reset ("retrain the whole network"). Here the network is
the run's backbone (``Backbone.stages``) followed by Table 2's head (``HashNet``):

    h_i = w_i f(image_i) + c_i,    fc(image_i) = head(h_i)                     (B, 3, S, S) -> (B, g)

f is the backbone: its last ``hash.cnn.trainable`` stages are trained, the others keep their pretrained
weights (in inference mode). With ``hash.input: features`` (the paper) w_i = 1 and c_i = 0; with
``hash.input: graph``, w_i and c_i come from item i's kNN graph over the frozen features (Eq. 4: w_i = p
when a neighbour is linked, c_i the weighted sum of the linked neighbours' features), the MLP's graph input
with x_i replaced by the trained embedding. The loss is the MLP's L2 (``hash_loss``), on the same targets.

Training is reproducible on CPU: batch order comes from a seeded generator, augmentations from a generator
seeded by (seed, epoch, item), so neither depends on the number of DataLoader workers, and a run resumed
from its checkpoint (saved atomically after every epoch) ends with the same bytes as an uninterrupted one.
When ``augment`` is empty the frozen stages see every image once: their outputs are computed once and
reused by every epoch, by encoding and by every code length.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset

from graphhash.backbones import Backbone
from graphhash.data.images import to_pixels
from graphhash.data.sources import Source
from graphhash.errors import GraphhashError
from graphhash.files.atomic import write_bytes
from graphhash.nrdh.hashnet import LOSS_TERMS, HashNet, HashNetConfig, Targets, adam_step, close_epoch, hash_loss
from graphhash.params.hash import CnnParams, HashParams
from graphhash.progress import Progress

log = logging.getLogger(__name__)

CACHE_LIMIT = 8 << 30  # bytes of frozen-stage outputs held in memory; beyond it the frozen stages run per batch
RESAMPLING = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}
JITTER = 0.4  # colour jitter: brightness, contrast and saturation factors drawn from [1 - JITTER, 1 + JITTER]


class HashCNN(nn.Module):
    """The backbone's stages, then Table 2's head: images (B, 3, S, S) -> fc (B, bits), before tanh.

    Args:
        stages: the backbone as ``Backbone.stages`` gives it (modules applied in order).
        trainable: how many of the last stages are trained; the rest form ``frozen``.
        head: Table 2's head, whose ``in_dim`` is the backbone's feature size.

    Shapes:
        ``frozen``: images (B, 3, S, S) -> the trained stages' input; ``forward(x, own, context)``: that
        input, optional own weights (B,) and neighbour sums (B, D) -> (B, bits).
    """

    def __init__(self, stages: list[nn.Module], trainable: int, head: HashNet):
        super().__init__()
        if trainable > len(stages):
            raise GraphhashError(f"hash.cnn.trainable: {trainable}, but the backbone has {len(stages)} stages")
        cut = len(stages) - trainable
        self.frozen = nn.Sequential(*stages[:cut]).requires_grad_(False)
        self.tuned = nn.Sequential(*stages[cut:])
        self.head = head

    def train(self, mode: bool = True) -> HashCNN:
        super().train(mode)
        self.frozen.eval()  # pretrained statistics and no drop-connect in the stages that are not trained
        return self

    def forward(
        self, x: torch.Tensor, own: torch.Tensor | None = None, context: torch.Tensor | None = None
    ) -> torch.Tensor:
        h = self.tuned(x)
        if own is not None:
            h = own[:, None] * h + context
        return self.head(h.float())


def build(backbone: Backbone, bits: int, cnn: CnnParams, negative_slope: float) -> HashCNN:
    return HashCNN(backbone.stages(), cnn.trainable, HashNet(HashNetConfig(backbone.dim, bits, negative_slope)))


# -- images ----------------------------------------------------------------------------------------------


def augmented(img: Image.Image, size: int, interpolation: str, augment: tuple[str, ...], crop_scale: float,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Pixels (S, S, 3) uint8 of ``img`` after the crop and flip of ``augment``, and its colour-jitter factors
    (3,) float32 (brightness, contrast, saturation; all 1 without jitter), which ``jitter`` applies on the batch.

    crop: a random box of area fraction U(crop_scale, 1) and aspect ratio log-uniform in [3/4, 4/3],
    clipped to the image, resized to S x S; flip: left-right with probability 1/2; jitter: each factor drawn
    from U(1 - JITTER, 1 + JITTER).
    """
    w, h = img.size
    box = (0, 0, w, h)
    if "crop" in augment:
        area = w * h * rng.uniform(crop_scale, 1.0)
        ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        cw, ch = min(w, max(1, round(math.sqrt(area * ratio)))), min(h, max(1, round(math.sqrt(area / ratio))))
        left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        box = (left, top, left + cw, top + ch)
    # Pillow crops and resizes in one call, a tenth of to_pixels' cost on small images (the two filters agree
    # within 2 grey levels, well inside what the augmentations change)
    pixels = np.asarray(img.resize((size, size), RESAMPLING[interpolation], box=box))
    if "flip" in augment and rng.random() < 0.5:
        pixels = np.ascontiguousarray(pixels[:, ::-1])
    factors = np.ones(3, dtype=np.float32)
    if "jitter" in augment:
        factors = rng.uniform(1 - JITTER, 1 + JITTER, size=3).astype(np.float32)
    return pixels, factors


def jitter(x: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Colour jitter of a batch (B, 3, S, S) of values in [0, 255], ``factors`` (B, 3): brightness (scale by b),
    then contrast (c, around the image's mean grey level), then saturation (s, around each pixel's grey
    level), clipped to [0, 255] at the end. The three are linear, so they compose into one map per image,
    s c b x + (1 - s) c b grey(x) + (1 - c) b mean(grey(x)): three passes over the batch instead of a dozen
    (the jitter had been the costliest part of loading)."""
    weights = torch.tensor([0.299, 0.587, 0.114], device=x.device)
    b, c, s = (factors[:, k].view(-1, 1, 1, 1) for k in range(3))
    grey = torch.einsum("bchw,c->bhw", x, weights)[:, None]
    mean = grey.mean(dim=(2, 3), keepdim=True)
    return (x * (s * c * b)).add_(grey * ((1 - s) * c * b)).add_(mean * ((1 - c) * b)).clamp_(0.0, 255.0)


class Images(Dataset):
    """Item ``rows[i]`` of ``ids`` as (i, pixels (S, S, 3) uint8), augmented for ``epoch`` when asked."""

    def __init__(self, source: Source, ids: list[str], size: int, interpolation: str, cnn: CnnParams, seed: int):
        self.source, self.ids, self.size, self.interpolation = source, ids, size, interpolation
        self.augment, self.crop_scale, self.seed = tuple(cnn.augment), cnn.crop_scale, seed
        self.epoch = -1  # -1: no augmentation (caching, encoding)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple[int, np.ndarray, np.ndarray | None]:
        """(i, pixels (S, S, 3) uint8, colour-jitter factors (3,) or None)."""
        img = self.source.image(self.ids[i])
        if self.epoch < 0 or not self.augment:
            return i, to_pixels(img, self.size, self.interpolation), None
        rng = np.random.default_rng([self.seed, self.epoch, i])
        pixels, factors = augmented(img, self.size, self.interpolation, self.augment, self.crop_scale, rng)
        return i, pixels, factors if "jitter" in self.augment else None


def _collate(batch: list) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    factors = None if batch[0][2] is None else torch.from_numpy(np.stack([f for _, _, f in batch]))
    return torch.tensor([i for i, _, _ in batch]), torch.from_numpy(np.stack([p for _, p, _ in batch])), factors


@dataclass
class Device:
    """Where the network runs and how: CUDA with bf16 autocast and channels-last, or fp32 on the CPU."""

    device: torch.device
    num_workers: int
    mean: torch.Tensor
    std: torch.Tensor

    @classmethod
    def of(cls, device: torch.device, num_workers: int, backbone: Backbone) -> Device:
        view = (1, 3, 1, 1)
        return cls(device, num_workers, torch.tensor(backbone.mean, device=device).view(view),
                   torch.tensor(backbone.std, device=device).view(view))  # fmt: skip

    @property
    def precision(self) -> str:
        return "bf16" if self.device.type == "cuda" else "fp32"

    def autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")

    def images(self, pixels: torch.Tensor, factors: torch.Tensor | None = None) -> torch.Tensor:
        """uint8 (B, S, S, 3) -> normalised float (B, 3, S, S), channels-last in memory; colour-jittered first
        when ``factors`` (B, 3) are given."""
        x = pixels.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float()
        if factors is not None:
            x = jitter(x, factors.to(self.device))
        return x.mul_(1.0 / (255.0 * self.std)).sub_(self.mean / self.std)

    def loader(self, images: Images, batches: list[list[int]]) -> DataLoader:
        return DataLoader(images, batch_sampler=batches, num_workers=self.num_workers, collate_fn=_collate,
                          pin_memory=self.device.type == "cuda")  # fmt: skip


def frozen_outputs(model: HashCNN, images: Images, device: Device, batch_size: int) -> torch.Tensor | None:
    """The frozen stages' outputs for every image (N, ...) on the CPU, or None when they would exceed
    ``CACHE_LIMIT`` (then the training loop runs the frozen stages on every batch)."""
    if len(model.frozen) == 0:
        return None  # every stage is trained: nothing to reuse
    probe = images[0][1]  # (pixels of item 0)
    with torch.no_grad(), device.autocast():
        shape = model.frozen(device.images(torch.from_numpy(probe[None]))).shape[1:]
    size = len(images) * math.prod(shape) * 4
    if size > CACHE_LIMIT:
        log.info("hash: frozen outputs of %d images would take %.1f GiB: computed per batch", len(images), size / 2**30)
        return None
    out = torch.empty((len(images), *shape), dtype=torch.float32)
    batches = [list(range(s, min(s + batch_size, len(images)))) for s in range(0, len(images), batch_size)]
    with Progress(len(images), "images", "hash: frozen stages") as bar, torch.no_grad(), device.autocast():
        for rows, pixels, _ in device.loader(images, batches):
            out[rows] = model.frozen(device.images(pixels)).float().cpu()
            bar.update(len(rows))
    return out


# -- training --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GraphParts:
    """``hash.input: graph``: every item's own weight (N,) and neighbour sum (N, D) (``TrainingSet.graph_parts``)."""

    own: torch.Tensor
    context: torch.Tensor


class Checkpoints:
    """The latest finished epoch of one training run, in ``folder / <fingerprint>.pt``, written atomically.

    Files of other fingerprints (other params, targets or code length) are stale and removed.
    """

    def __init__(self, folder: Path, fingerprint: str):
        self.folder, self.path = folder, folder / f"{fingerprint}.pt"
        if folder.is_dir():
            for stale in folder.glob("*.pt"):
                if stale != self.path:
                    stale.unlink(missing_ok=True)

    def load(self) -> dict | None:
        if not self.path.is_file():
            return None
        return torch.load(self.path, map_location="cpu", weights_only=True)

    def save(self, state: dict) -> None:
        buffer = io.BytesIO()
        torch.save(state, buffer)
        write_bytes(self.path, buffer.getvalue())

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
        if self.folder.is_dir() and not any(self.folder.iterdir()):
            self.folder.rmdir()


def fingerprint(params: HashParams, targets: Targets, ids: list[str], weights: str) -> str:
    """What determines a training run: its params, its targets, its items and the backbone's weights."""
    digest = hashlib.sha256(json.dumps([params.model_dump(), ids, weights], sort_keys=True).encode())
    for values in (targets.fit, targets.reference):
        digest.update(np.ascontiguousarray(values.numpy()).tobytes())
    return digest.hexdigest()[:16]


def train_cnn(
    model: HashCNN,
    images: Images,
    targets: Targets,
    params: HashParams,
    device: Device,
    *,
    cache: torch.Tensor | None,
    graph: GraphParts | None,
    checkpoints: Checkpoints,
) -> list[dict[str, float]]:
    """Fit ``model`` on the training ``images`` to their ``targets`` for ``hash.cnn.steps`` Adam steps.

    ``cache``: the frozen stages' outputs of these images (only when there is no augmentation). Each epoch
    shuffles the items into N // batch_size equal batches; after every epoch the model, the optimiser and
    the random states are checkpointed, and a rerun resumes from the last one. Returns one record per epoch.
    """
    cnn = params.cnn
    if len(images) < 2:
        raise GraphhashError("hash: batch normalisation needs at least 2 training items")
    optimiser = torch.optim.Adam([{"params": model.tuned.parameters(), "lr": cnn.lr},
                                  {"params": model.head.parameters(), "lr": params.lr}])  # fmt: skip
    order = torch.Generator().manual_seed(params.seed)
    batches = max(1, len(images) // cnn.batch_size)
    history: list[dict[str, float]] = []
    step = 0
    saved = checkpoints.load()
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimiser.load_state_dict(saved["optimiser"])
        order.set_state(saved["order"])
        torch.set_rng_state(saved["rng"])
        history, step = json.loads(saved["history"]), int(saved["step"])
        log.info("hash: resuming after epoch %d (step %d of %d) from %s", len(history), step, cnn.steps,
                 checkpoints.path)  # fmt: skip
    model.to(device.device, memory_format=torch.channels_last).train()
    targets = targets.to(device.device)
    sizes = [len(rows) for rows in torch.tensor_split(torch.arange(len(images)), batches)]
    done = lambda steps: (steps // batches) * len(images) + sum(sizes[: steps % batches])  # noqa: E731
    with Progress(done(cnn.steps), "images", "hash: cnn training", initial=done(step)) as bar:
        while step < cnn.steps:
            images.epoch = len(history)
            split = torch.tensor_split(torch.randperm(len(images), generator=order), batches)
            split = [rows.tolist() for rows in split[: cnn.steps - step]]
            source = ((torch.tensor(rows), None, None) for rows in split) if cache is not None else None
            sums = dict.fromkeys(LOSS_TERMS, 0.0)
            seen = 0
            for rows, pixels, factors in source or device.loader(images, split):
                with device.autocast():
                    if cache is not None:
                        x = cache[rows].to(device.device, non_blocking=True)
                    else:
                        with torch.no_grad():
                            x = model.frozen(device.images(pixels, factors))
                    parts = (graph.own[rows].to(device.device), graph.context[rows].to(device.device)) if graph else ()
                    fc = model(x, *parts).float()
                terms = hash_loss(fc, targets[rows.to(device.device)], params)
                adam_step(optimiser, terms, sums, len(rows))
                seen += len(rows)
                step += 1
                bar.update(len(rows))
            close_epoch(history, sums, seen, step, cnn.steps, "hash: cnn epoch", "lower hash.cnn.lr or hash.lr")
            checkpoints.save({"model": model.state_dict(), "optimiser": optimiser.state_dict(),
                              "order": order.get_state(), "rng": torch.get_rng_state(), "step": step,
                              "history": json.dumps(history)})  # fmt: skip
    return history


@torch.inference_mode()
def encode_images(
    model: HashCNN,
    images: Images,
    device: Device,
    batch_size: int,
    *,
    cache: torch.Tensor | None = None,
    graph: GraphParts | None = None,
) -> np.ndarray:
    """Binary codes (N, bits) as bools of every image (Eq. 19: bit = fc >= 0), batch norm in inference mode;
    ``cache`` and ``graph`` as in ``train_cnn``, for the same N items."""
    images.epoch = -1
    codes = np.zeros((len(images), model.head.config.bits), dtype=bool)
    batches = [list(range(s, min(s + batch_size, len(images)))) for s in range(0, len(images), batch_size)]
    source = ((torch.tensor(rows), None, None) for rows in batches) if cache is not None else None
    with Progress(len(images), "images", "hash: cnn encoding") as bar:
        for rows, pixels, _ in source or device.loader(images, batches):
            x = cache[rows] if cache is not None else pixels
            parts = (graph.own[rows], graph.context[rows]) if graph else ()
            codes[rows.numpy()] = hash_inputs(model, x, device, *parts)
            bar.update(len(rows))
    return codes


@torch.inference_mode()
def hash_inputs(
    model: HashCNN,
    x: torch.Tensor,
    device: Device,
    own: torch.Tensor | None = None,
    context: torch.Tensor | None = None,
) -> np.ndarray:
    """Codes (B, bits) as bools, Eq. 19 (bit = tanh(fc) >= 0), of images as uint8 pixels (B, S, S, 3) or of
    the frozen stages' outputs (float); ``own`` and ``context`` as in ``HashCNN.forward``."""
    model.to(device.device, memory_format=torch.channels_last).eval()
    with device.autocast():
        x = model.frozen(device.images(x)) if x.dtype == torch.uint8 else x.to(device.device)
        parts = (own.to(device.device), context.to(device.device)) if own is not None else ()
        return (torch.tanh(model(x, *parts).float()) >= 0).cpu().numpy()
