"""Saved models: a folder holding ``model.pt`` (the state dict) and ``model.json`` (what rebuilds it).

``save_model`` and ``load_model`` are the one way in and out. Weights are read with
``torch.load(weights_only=True)``, so a checkpoint cannot run code; the JSON carries a format tag, the model's
kind and its configuration. ``read_state_dict`` and ``load_weights`` also serve the backbones' weight files.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from graphhash.errors import GraphhashError, describe
from graphhash.files.atomic import file_sha256, write_bytes, write_json

FORMAT = "graphhash-model/1"
WEIGHTS, CONFIG = "model.pt", "model.json"
ZIP_MAGIC, PICKLE_MAGIC = b"PK\x03\x04", b"\x80"  # torch.save's archive; the legacy format is a pickle


def save_model(folder: str | Path, model: nn.Module, kind: str, config: dict[str, Any]) -> None:
    """Write ``model``'s state dict and ``config`` (JSON-ready) to ``folder``.

    torch.save names the archive's root folder after the file it writes to; saving through a buffer names it
    ``archive`` whatever the file is called, so equal weights give equal bytes.
    """
    folder = Path(folder)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    write_bytes(folder / WEIGHTS, buffer.getvalue())
    write_json(folder / CONFIG, {"format": FORMAT, "model": kind, **config})


def weights_sha256(folder: str | Path) -> str:
    """The SHA-256 of a saved model's weights: what tells two trainings apart (the index files record the hash
    network's)."""
    path = Path(folder) / WEIGHTS
    if not path.is_file():
        raise GraphhashError(f"{folder}: no {WEIGHTS} (a model folder holds {WEIGHTS} and {CONFIG})")
    return file_sha256(path)


def load_model(
    folder: str | Path, kind: str | tuple[str, ...], stage: str
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The state dict and configuration saved by ``save_model`` for a model of ``kind`` (or one of several);
    errors name the folder and the ``stage``."""
    kinds = (kind,) if isinstance(kind, str) else kind
    folder = Path(folder)
    if not folder.is_dir():
        what = "does not exist" if not folder.exists() else "is a file, not a model folder"
        raise GraphhashError(f"{folder}: {what} (a model folder holds {WEIGHTS} and {CONFIG}, from the {stage} stage)")
    try:
        config = json.loads((folder / CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise GraphhashError(f"{folder / CONFIG}: cannot read the model's configuration ({describe(exc)})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT or config.get("model") not in kinds:
        found = f"{config.get('format')}, {config.get('model')}" if isinstance(config, dict) else type(config).__name__
        raise GraphhashError(f"{folder}: not a {' or '.join(kinds)} model ({found}); rerun the {stage} stage")
    return read_state_dict(folder / WEIGHTS, f"{folder / WEIGHTS}"), config


def read_state_dict(path: str | Path, origin: str) -> dict[str, torch.Tensor]:
    """A state dict saved with ``torch.save``, loaded with ``weights_only=True``; ``origin`` starts errors."""
    path = Path(path)
    if path.is_dir():
        raise GraphhashError(f"{origin}: is a folder, not a state-dict file")
    if not path.is_file():
        raise GraphhashError(f"{origin}: does not exist")
    with open(path, "rb") as f:
        head = f.read(4)
    if not head.startswith((ZIP_MAGIC, PICKLE_MAGIC)):
        raise GraphhashError(f"{origin}: not a PyTorch weights file (torch.save writes a zip archive; this is not one)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several unrelated types for a bad file
        if "Weights only load failed" in str(exc):
            reason = "it holds Python objects besides tensors, which are never loaded (weights_only=True)"
        else:
            reason = f"torch.load: {describe(exc)}"
        raise GraphhashError(f"{origin}: not a PyTorch weights file ({reason})") from None
    for key in ("state_dict", "model"):  # common checkpoint wrappers
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise GraphhashError(f"{origin}: holds a {type(state).__name__}, not a state dict of tensors")
    return state


def load_weights(module: nn.Module, state: dict[str, torch.Tensor], origin: str) -> None:
    """``module.load_state_dict(state)``, with a one-line summary when keys or shapes do not match."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    resized = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys (e.g. {missing[0]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})")
    if resized:
        key = resized[0]
        problems.append(f"{len(resized)} keys of another shape (e.g. {key}: {tuple(state[key].shape)} in the file, "
                        f"{tuple(expected[key].shape)} in the model)")  # fmt: skip
    if problems:
        raise GraphhashError(f"{origin}: does not fit the model: {'; '.join(problems)}")
    module.load_state_dict(state, strict=True)
