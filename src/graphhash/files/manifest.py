"""The manifest: the contract between ``prepare`` and ``extract``.

One JSON file lists every item (id = path relative to the dataset root, and its label: an integer class, or for
multi-label data a 0/1 row over the classes), the class names, the modalities every item holds (``image``; ``image``
and ``text`` for paired data), the split masks, where the data lives, and a SHA-256 digest of every item's
content, so that changed files change the manifest and DVC reruns what depends on it. When the source saw files
it did not list (an image beside the class folders, a text file in one), ``left_out`` counts them by why.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from graphhash.errors import GraphhashError
from graphhash.files.atomic import write_json

FORMAT = "graphhash-manifest/2"
SPLITS = ("query", "database", "train")


@dataclass(frozen=True)
class Split:
    """Boolean masks over the items: the queries, the database, the training set."""

    query: np.ndarray
    database: np.ndarray
    train: np.ndarray


@dataclass(frozen=True)
class Manifest:
    source: str
    path: str
    modalities: list[str]
    classes: list[str]
    ids: list[str]
    labels: np.ndarray  # (N,) int64 classes, or (N, L) bool for multi-label data
    split: Split
    content_sha256: str
    left_out: dict[str, int] = field(default_factory=dict)  # files the source saw and did not list: {why: how many}

    def __len__(self) -> int:
        return len(self.ids)

    def save(self, dest: str | Path) -> None:
        masks = {name: getattr(self.split, name).astype(int).tolist() for name in SPLITS}
        write_json(
            dest,
            {
                "format": FORMAT,
                "source": self.source,
                "path": self.path,
                "modalities": self.modalities,
                "classes": self.classes,
                "content_sha256": self.content_sha256,
                "counts": {"items": len(self), **{name: int(sum(m)) for name, m in masks.items()}},
                "ids": self.ids,
                "labels": (self.labels.astype(np.uint8) if self.labels.ndim == 2 else self.labels).tolist(),
                **masks,
                **({"left_out": self.left_out} if self.left_out else {}),  # only when files were left out
            },
        )

    @classmethod
    def load(cls, src: str | Path) -> Manifest:
        try:
            raw = json.loads(Path(src).read_text(encoding="utf-8"))
            if not isinstance(raw, dict) or raw.get("format") != FORMAT:
                raise ValueError(f"not a {FORMAT} JSON object")
            masks = {name: np.array(raw[name], dtype=bool) for name in SPLITS}
            labels = np.array(raw["labels"], dtype=np.int64)
            if labels.ndim == 2:  # a 0/1 row per item
                labels = labels.astype(bool)
            if not all(len(m) == len(raw["ids"]) == len(labels) for m in masks.values()):
                raise ValueError("ids, labels and masks differ in length")
            return cls(
                source=raw["source"],
                path=raw["path"],
                modalities=list(raw["modalities"]),
                classes=list(raw["classes"]),
                ids=list(raw["ids"]),
                labels=labels,
                split=Split(**masks),
                content_sha256=raw["content_sha256"],
                left_out=dict(raw.get("left_out", {})),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise GraphhashError(f"{src}: not a valid manifest ({exc}); rerun the prepare stage") from exc


def no_label_metrics(classes: list[str]) -> str | None:
    """Why items of ``classes`` can have no label metrics (fewer than two classes), in words; None when they can."""
    if len(classes) >= 2:
        return None
    if not classes:
        return "the items have no labels"
    return (
        f"the items have one class ({classes[0]}), so every item is relevant to every query and every label "
        "metric would be 1"
    )
