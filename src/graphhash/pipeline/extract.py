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

import io
import logging
import os
import platform
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from graphhash.backbones import Backbone, load_backbone
from graphhash.data.items import ItemDataset
from graphhash.data.sources import open_source
from graphhash.errors import GraphhashError
from graphhash.files.features import write_features
from graphhash.files.hdf5 import json_attr
from graphhash.files.manifest import SPLITS, Manifest
from graphhash.files.resume import Resume, fingerprint
from graphhash.params.extract import ExtractParams
from graphhash.pipeline.ranks import Ranks, launch
from graphhash.progress import Progress
from graphhash.runtime import precision, resolve_device, resolve_workers

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


def embedder(backbone: Backbone | None, device: torch.device) -> Callable[[list[torch.Tensor]], list[np.ndarray]]:
    """Batches of items (``ItemDataset.collate``) to float32 features on ``device``, one array per modality: the
    backbone's embedding of the pixels, or the vectors as they are for a vector source."""
    if backbone is None:
        return lambda batch: [view.numpy() for view in batch]
    backbone.to(device)
    return lambda batch: [backbone.embed(batch[0], device)]


class Chunks:
    """Finished batches of one extraction (``graphhash.files.resume``): one ``.npz`` file per batch, named by the
    batch's first row, holding its features in each modality and each item's error. Ranks save disjoint chunks."""

    def __init__(self, resume: Resume):
        self.resume = resume

    @staticmethod
    def name(start: int) -> str:
        return f"rows-{start:012d}.npz"

    def has(self, start: int) -> bool:
        return self.resume.has(self.name(start))

    def save(self, start: int, features: list[np.ndarray], errors: list[str]) -> None:
        buffer = io.BytesIO()
        np.savez(buffer, *features, errors=np.array(errors, dtype=str))
        self.resume.save(self.name(start), buffer.getvalue())

    def errors(self, start: int) -> list[str]:
        with np.load(self.resume.path(self.name(start))) as chunk:
            return chunk["errors"].tolist()

    def features(self, start: int) -> list[np.ndarray]:
        with np.load(self.resume.path(self.name(start))) as chunk:
            return [chunk[f"arr_{m}"] for m in range(len(chunk.files) - 1)]


def extract(manifest: Manifest, params: ExtractParams, dest: str | Path) -> None:
    """Write the features file ``dest`` for every item of ``manifest`` (the ``extract`` section in ``params``).

    Started by torchrun, this process is one rank of several (``Ranks``); with ``extract.ranks`` > 1 and no
    launcher it starts that many ranks on this machine, each of which comes back here.
    """
    device = resolve_device(params.device, "extract.device")
    if params.ranks > 1 and not Ranks.launched():
        check_ranks(params, device, len(manifest.ids))
        launch(params.ranks, extract, manifest, params, dest, key="extract.ranks")
        return
    ranks = Ranks.join(device)
    try:
        _extract(manifest, params, Path(dest), device, ranks)
    finally:
        ranks.leave()


def check_ranks(params: ExtractParams, device: torch.device, items: int) -> None:
    """``extract.ranks`` within what this machine and the items can use: at most one rank per GPU, or per CPU core
    unless ``extract.oversubscribe``, and no more ranks than batches (a rank without a batch only costs memory)."""
    batches = -(-items // params.batch_size)
    if params.ranks > batches:
        raise GraphhashError(f"extract.ranks: {params.ranks} ranks for {items:,} items in {batches:,} batches of "
                             f"{params.batch_size}: at most one rank per batch")  # fmt: skip
    if device.type == "cuda":
        gpus = torch.cuda.device_count()
        if params.ranks > gpus:
            raise GraphhashError(f"extract.ranks: {params.ranks} ranks on {gpus} GPUs: at most one rank per GPU")
    elif params.ranks > (cores := os.cpu_count() or 1) and not params.oversubscribe:
        raise GraphhashError(f"extract.ranks: {params.ranks} ranks on {cores} CPU cores; set extract.oversubscribe: "
                             "true to run more ranks than cores")  # fmt: skip


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
    dataset = ItemDataset(source, manifest.ids, params.image_size, backbone.interpolation if backbone else None)
    settings = {
        "backbone": backbone_name,
        "weights": backbone.weights if backbone else "none",
        "image_size": params.image_size if backbone else 0,
        "dims": dict(
            zip(source.modalities, [backbone.dim] if backbone else [s[0] for s in dataset.item_shapes], strict=True)
        ),
        "batch_size": params.batch_size,
        "device": device.type,
        "precision": precision(device) if backbone else "fp32",
        "versions": library_versions(),
    }
    mine = fingerprint({"content": manifest.content_sha256, "ids": manifest.ids, **settings})
    prints = ranks.gather(mine)
    if len(set(prints)) > 1:
        others = ", ".join(f"rank {r}: {p}" for r, p in enumerate(prints))
        raise GraphhashError(f"extract: the ranks were started with different params or manifests ({others}); "
                             "start every rank from the same params.yaml and manifest")  # fmt: skip
    resume = Resume(dest, mine, clean=ranks.rank == 0)
    ranks.barrier()  # rank 0 has removed the chunks of other runs before any rank saves its own
    where = f", {ranks} (pid {os.getpid()})" if ranks.world > 1 else ""
    log.info("extract: %d items with %s (%s) on %s, %s%s", len(manifest), settings["backbone"], settings["weights"],
             device.type, settings["precision"], where)  # fmt: skip
    _run_batches(dataset, embedder(backbone, device), Chunks(resume), params, ranks, device)
    ranks.barrier()  # every shard is saved
    if ranks.rank == 0:
        _write(manifest, Chunks(resume), params, settings, dest)
        resume.remove()


def _run_batches(
    dataset: ItemDataset,
    embed: Callable[[list[torch.Tensor]], list[np.ndarray]],
    chunks: Chunks,
    params: ExtractParams,
    ranks: Ranks,
    device: torch.device,
) -> None:
    """Encode every batch of this rank's shard that has no chunk yet and save it as one."""
    count, step = len(dataset), params.batch_size
    shard = ranks.shard(range(0, count, step))
    todo = [s for s in shard if not chunks.has(s)]
    who = f"{ranks}: " if ranks.world > 1 else ""
    if len(todo) < len(shard):
        log.info("%sresuming: %d of %d batches already done in %s", who, len(shard) - len(todo), len(shard),
                 chunks.resume.root)  # fmt: skip
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
            features = embed(batch)
            for modality, view in zip(dataset.source.modalities, features, strict=True):
                for row in np.flatnonzero(~np.isfinite(view).all(axis=1)):
                    if not errors[row]:
                        where = dataset.source.where(dataset.ids[start + row])
                        errors[row] = f"{where}: its {modality} features hold NaN or infinite values"
            if params.on_bad_image == "fail":
                _fail_on_first(errors)
            chunks.save(start, features, errors)
            bar.update(len(errors))


def _write(manifest: Manifest, chunks: Chunks, params: ExtractParams, settings: dict, dest: Path) -> None:
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
