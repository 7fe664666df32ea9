"""The ``extract`` stage: run a backbone over every item of the manifest and write the features file.

Work is streamed in batches: images are decoded one by one and resized a batch at a time, between the
model's batches on a CPU (a decoding process there competes with the model's threads) or in DataLoader
workers beside a GPU. Every finished batch is saved at once as a small chunk file (written to a temporary
name, then renamed) in a resume folder beside the output, keyed by a fingerprint of everything that
determines the values. An interrupted run (exception, Ctrl-C, kill) therefore resumes from the chunks
already done; the batches are the same, so the finished file holds the same values as an uninterrupted
run. When every batch is done the chunks are streamed into the HDF5 file, which appears atomically, and
the folder goes.

Across processes, GPUs and machines (``extract.ranks``, or torchrun over a shared file system): rank r of
W embeds batches r, r + W, r + 2W, ... and saves them as its own chunks in the same folder; the ranks
first check that they hold the same fingerprint (the same params, manifest and libraries), and rank 0
merges every chunk in manifest order once all are saved. Batches are the same whatever W is, so the file
is the one a single process writes, and a rerun after a kill resumes every shard from its chunks.

Vector sources (``npy``, ``synthetic``, the paired ``wiki`` and ``mirflickr_tags``) hold the features already: their
vectors go through the same path with no model, one matrix per modality (``Source.modalities``). An item
that cannot be read or decoded, or whose features are not finite (NaN or infinite, from a vector file or a
backbone), stops the stage with one line naming it, or is left out under ``extract.on_bad_image: skip``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import shutil
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from graphhash.backbones import Backbone, load_backbone
from graphhash.data.images import to_batch
from graphhash.data.sources import Source, open_source
from graphhash.errors import GraphhashError
from graphhash.files.features import write_features
from graphhash.files.hdf5 import json_attr
from graphhash.files.manifest import SPLITS, Manifest
from graphhash.params.extract import ExtractParams
from graphhash.pipeline.ranks import Ranks, launch
from graphhash.progress import Progress

log = logging.getLogger(__name__)

# What the recorded library versions cover: a change in any of them may change the features.
VERSIONED = ("graphhash", "torch", "torchvision", "numpy", "h5py", "pillow", "efficientnet-lite-pytorch")


def library_versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def resolve_workers(requested: int | str, device: torch.device) -> int:
    """``auto``: no worker process on CPU, up to 8 with CUDA.

    On CPU the model's threads already occupy every core, and a decoding process preempting one of them
    stalls them all at their next synchronisation: on 2 cores, EfficientNet-Lite0 extraction ran at 140
    images/s decoding in the main process and 111 with 2 workers (bench/extract_throughput.py).
    """
    if requested != "auto":
        return int(requested)
    return 0 if device.type == "cpu" else min(8, os.cpu_count() or 1)


def resolve_device(requested: str, key: str = "extract.device") -> torch.device:
    """``auto`` picks CUDA when present, else the CPU; asking for CUDA without one is an error naming ``key``."""
    if requested == "cuda" and not torch.cuda.is_available():
        raise GraphhashError(f"{key}: 'cuda' requested but no CUDA device is available (use auto or cpu)")
    return torch.device("cuda" if requested in ("auto", "cuda") and torch.cuda.is_available() else "cpu")


class ItemDataset(Dataset):
    """Item i of ``ids`` as (i, arrays, error), one array per modality of the source: decoded uint8 pixels
    (h, w, 3) of an image, or float32 vectors for vector sources; ``collate`` makes a batch of them, resizing the
    images of one size together (``to_batch``).

    An unreadable item yields blanks and its error message instead of raising inside a worker process,
    so the main process decides what to do (fail or skip) and can name the file in one line.
    """

    def __init__(self, source: Source, ids: list[str], image_size: int, backbone: Backbone | None):
        self.source, self.ids, self.image_size, self.backbone = source, ids, image_size, backbone
        self.item_shapes = [(image_size, image_size, 3)] if backbone is not None else self._vector_shapes()

    def _vector_shapes(self) -> list[tuple[int, ...]]:
        for item_id in self.ids:
            try:
                return [vector.shape for vector in self.source.vectors(item_id)]
            except GraphhashError:
                continue
        raise GraphhashError(f"extract: none of the {len(self.ids)} vectors of the source is readable")

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple[int, tuple[np.ndarray, ...], str]:
        item_id = self.ids[i]
        try:
            if self.backbone is None:
                arrays = self.source.vectors(item_id)
                for modality, array, shape in zip(self.source.modalities, arrays, self.item_shapes, strict=True):
                    if array.shape != shape:
                        raise GraphhashError(f"{self.source.where(item_id)}: {modality} vector of shape {array.shape}, "
                                             f"expected {shape}")  # fmt: skip
            else:
                arrays = (np.asarray(self.source.image(item_id), dtype=np.uint8),)
            return i, arrays, ""
        except GraphhashError as exc:
            if self.backbone is None:
                return i, tuple(np.zeros(shape, np.float32) for shape in self.item_shapes), str(exc)
            return i, (np.zeros((1, 1, 3), np.uint8),), str(exc)

    def collate(self, batch: list[tuple[int, tuple[np.ndarray, ...], str]]) -> tuple[list[torch.Tensor], list[str]]:
        """A batch per modality, (B, S, S, 3) uint8 or (B, D_m) float32, and each item's error ('' when read)."""
        errors = [error for _, _, error in batch]
        if self.backbone is None:
            columns = zip(*(arrays for _, arrays, _ in batch), strict=True)
            return [torch.from_numpy(np.stack(column)) for column in columns], errors
        images = [arrays[0] for _, arrays, _ in batch]
        return [torch.from_numpy(to_batch(images, self.image_size, self.backbone.interpolation))], errors


@dataclass(frozen=True)
class Encoder:
    """Batches of items to float32 features on the chosen device, one array per modality (identity for vector
    sources)."""

    backbone: Backbone | None
    device: torch.device

    @property
    def precision(self) -> str:
        return "bf16" if self.device.type == "cuda" and self.backbone is not None else "fp32"

    def __post_init__(self) -> None:
        if self.backbone is not None:
            self.backbone.model.to(self.device, memory_format=torch.channels_last)

    @torch.inference_mode()
    def __call__(self, batch: list[torch.Tensor]) -> list[np.ndarray]:
        if self.backbone is None:
            return [view.numpy() for view in batch]
        # (x / 255 - mean) / std as one scale and one shift, in place
        std = torch.tensor(self.backbone.std, device=self.device).view(1, 3, 1, 1)
        mean = torch.tensor(self.backbone.mean, device=self.device).view(1, 3, 1, 1)
        x = batch[0].to(self.device, non_blocking=True).permute(0, 3, 1, 2).float()  # NHWC memory = channels-last
        x = x.mul_(1.0 / (255.0 * std)).sub_(mean / std)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            features = self.backbone.model(x)
        return [features.float().cpu().numpy()]


class ChunkStore:
    """Finished batches of one extraction, one ``.npz`` file per batch, named by the batch's first row.

    The folder is named by the run's fingerprint; folders of other fingerprints are stale and removed
    (``clean``: by one rank only, before any rank saves). Ranks write disjoint chunk files, never one file.
    """

    def __init__(self, parent: Path, fingerprint: str, clean: bool = True):
        if clean and parent.is_dir():
            for stale in parent.iterdir():
                if stale.name != fingerprint:
                    shutil.rmtree(stale, ignore_errors=True)
        self.parent = parent
        self.root = parent / fingerprint
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, start: int) -> Path:
        return self.root / f"rows-{start:012d}.npz"

    def has(self, start: int) -> bool:
        return self.path(start).is_file()

    def save(self, start: int, features: list[np.ndarray], errors: list[str]) -> None:
        """The batch from row ``start``: its features in each modality, in order, and each item's error."""
        tmp = self.root / f".rows-{start:012d}.tmp.npz"
        np.savez(tmp, *features, errors=np.array(errors, dtype=str))
        tmp.replace(self.path(start))  # atomic: a chunk is either whole or absent

    def errors(self, start: int) -> list[str]:
        with np.load(self.path(start)) as chunk:
            return chunk["errors"].tolist()

    def features(self, start: int) -> list[np.ndarray]:
        with np.load(self.path(start)) as chunk:
            return [chunk[f"arr_{m}"] for m in range(len(chunk.files) - 1)]

    def remove(self) -> None:
        shutil.rmtree(self.parent, ignore_errors=True)


def fingerprint(manifest: Manifest, settings: dict) -> str:
    """What determines the values of every chunk: the data, the ids, the model and the runtime."""
    blob = json.dumps({"content": manifest.content_sha256, "ids": manifest.ids, **settings}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def extract(manifest: Manifest, params: ExtractParams, dest: str | Path) -> None:
    """Write the features file ``dest`` for every item of ``manifest`` (the ``extract`` section in ``params``).

    Started by torchrun, this process is one rank of several (``Ranks``); with ``extract.ranks`` > 1 and no
    launcher it starts that many ranks on this machine, each of which comes back here.
    """
    if params.ranks > 1 and not Ranks.launched():
        launch(params.ranks, extract, manifest, params, dest, key="extract.ranks")
        return
    device = resolve_device(params.device)
    ranks = Ranks.join(device)
    try:
        _extract(manifest, params, Path(dest), device, ranks)
    finally:
        ranks.leave()


def _extract(manifest: Manifest, params: ExtractParams, dest: Path, device: torch.device, ranks: Ranks) -> None:
    """This rank's shard of the batches as chunks; rank 0 merges every shard's chunks into ``dest``."""
    source = open_source(manifest.source, manifest.path)
    backbone = None
    if not source.holds_vectors:
        backbone = load_backbone(params.backbone, params.weights, params.weights_path, params.image_size)
    backbone_name = params.backbone if backbone else f"none ({manifest.source} vectors)"
    if list(source.modalities) != manifest.modalities:
        held, listed = ", ".join(source.modalities), ", ".join(manifest.modalities)
        raise GraphhashError(f"{manifest.source}: its items hold the modalities {held}, but the manifest lists "
                             f"{listed}; rerun the prepare stage")  # fmt: skip
    encoder = Encoder(backbone, device)
    dataset = ItemDataset(source, manifest.ids, params.image_size, backbone)
    settings = {
        "backbone": backbone_name,
        "weights": backbone.weights if backbone else "none",
        "image_size": params.image_size if backbone else 0,
        "dims": dict(
            zip(source.modalities, [backbone.dim] if backbone else [s[0] for s in dataset.item_shapes], strict=True)
        ),
        "batch_size": params.batch_size,
        "device": device.type,
        "precision": encoder.precision,
        "versions": library_versions(),
    }
    mine = fingerprint(manifest, settings)
    prints = ranks.gather(mine)
    if len(set(prints)) > 1:
        others = ", ".join(f"rank {r}: {p}" for r, p in enumerate(prints))
        raise GraphhashError(f"extract: the ranks were started with different params or manifests ({others}); "
                             "start every rank from the same params.yaml and manifest")  # fmt: skip
    chunks = ChunkStore(dest.parent / f".{dest.name}.resume", mine, clean=ranks.rank == 0)
    ranks.barrier()  # rank 0 has removed the chunks of other runs before any rank saves its own
    log.info("extract: %d items with %s (%s) on %s, %s%s", len(manifest), settings["backbone"], settings["weights"],
             device.type, encoder.precision, f", {ranks} (pid {os.getpid()})" if ranks.world > 1 else "")  # fmt: skip
    _run_batches(dataset, encoder, chunks, params, ranks)
    ranks.barrier()  # every shard is saved
    if ranks.rank == 0:
        _write(manifest, chunks, params, settings, dest)
        chunks.remove()


def _run_batches(
    dataset: ItemDataset, encoder: Encoder, chunks: ChunkStore, params: ExtractParams, ranks: Ranks
) -> None:
    """Encode every batch of this rank's shard that has no chunk yet and save it as one."""
    count, step = len(dataset), params.batch_size
    shard = ranks.shard(range(0, count, step))
    todo = [s for s in shard if not chunks.has(s)]
    who = f"{ranks}: " if ranks.world > 1 else ""
    if len(todo) < len(shard):
        log.info("%sresuming: %d of %d batches already done in %s", who, len(shard) - len(todo), len(shard),
                 chunks.root)  # fmt: skip
    device = encoder.device
    loader = DataLoader(
        dataset,
        batch_sampler=[list(range(s, min(s + step, count))) for s in todo],
        num_workers=resolve_workers(params.num_workers, device),
        collate_fn=dataset.collate,
        pin_memory=device.type == "cuda",
    )
    total = sum(min(step, count - s) for s in shard)
    initial = total - sum(min(step, count - s) for s in todo)
    with Progress(total, "items", f"{who}extract", initial=initial) as bar:
        for start, (batch, errors) in zip(todo, loader, strict=True):
            features = encoder(batch)
            for modality, view in zip(dataset.source.modalities, features, strict=True):
                for row in np.flatnonzero(~np.isfinite(view).all(axis=1)):
                    if not errors[row]:
                        where = dataset.source.where(dataset.ids[start + row])
                        errors[row] = f"{where}: its {modality} features hold NaN or infinite values"
            if params.on_bad_image == "fail":
                _fail_on_first(errors)
            chunks.save(start, features, errors)
            bar.update(len(errors))


def _write(manifest: Manifest, chunks: ChunkStore, params: ExtractParams, settings: dict, dest: Path) -> None:
    """Stream the chunks' readable rows into the features file; unreadable items fail or are left out."""
    starts, step = range(0, len(manifest), params.batch_size), params.batch_size
    errors = [e for s in starts for e in chunks.errors(s)]
    if params.on_bad_image == "fail":  # also catches chunks saved by an earlier run in skip mode
        _fail_on_first(errors)
    ok = np.array([not e for e in errors], dtype=bool)
    skipped = [manifest.ids[i] for i in np.flatnonzero(~ok)]
    for i in np.flatnonzero(~ok):
        log.warning("skipped: %s", errors[i])
    if not ok.any():
        raise GraphhashError("extract: no item could be read; see the skipped items above")
    masks = {name: getattr(manifest.split, name)[ok] for name in SPLITS}
    for name, mask in masks.items():
        if not mask.any():
            raise GraphhashError(f"extract: every {name} item was skipped as unreadable")

    modalities = list(settings["dims"])
    blocks = ({modality: view[ok[s : s + step]] for modality, view in zip(modalities, chunks.features(s), strict=True)}
              for s in starts)  # fmt: skip
    recorded = ("backbone", "weights", "image_size", "device", "precision")
    write_features(
        dest,
        blocks,
        dims=settings["dims"],
        ids=[manifest.ids[i] for i in np.flatnonzero(ok)],
        labels=manifest.labels[ok],
        masks=masks,
        attrs={
            "source": manifest.source,
            **{key: settings[key] for key in recorded},
            "classes": json_attr(manifest.classes),
            "skipped_ids": json_attr(skipped),
            "content_sha256": manifest.content_sha256,
            "versions": json_attr(settings["versions"]),
        },
    )
    sizes = ", ".join(f"{modality} {dim}" for modality, dim in settings["dims"].items())
    log.info("wrote %s: %d items' features (%s), %d skipped", dest, int(ok.sum()), sizes, len(skipped))


def _fail_on_first(errors: list[str]) -> None:
    first = next((e for e in errors if e), None)
    if first is not None:
        raise GraphhashError(f"{first} (set extract.on_bad_image: skip to leave such items out)")
