"""Named presets: a few params.yaml values that make a known configuration, in ``presets/<name>.yaml``.

``graphhash preset NAME...`` rewrites params.yaml as the schema's defaults with the presets applied in order,
keeping the values of the sections that describe the data (``prepare``, ``extract``): switching presets never
carries a value over from the previous one, and never forgets where the images are. ``graphhash preset default``
writes the defaults as the committed params.yaml holds them (after a new key, say).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from graphhash.errors import GraphhashError
from graphhash.files.atomic import write_text
from graphhash.params import read_params_file
from graphhash.params.all import HEADER, check, defaults, render
from graphhash.params.extract import ExtractParams
from graphhash.params.prepare import PrepareParams

DATA_SECTIONS = (PrepareParams.section, ExtractParams.section)
DEFAULT = "default"  # the name that applies no preset


def presets_folder(params_path: Path) -> Path:
    """Presets live in ``presets/`` beside params.yaml."""
    return params_path.resolve().parent / "presets"


def read_preset(name: str, params_path: str | Path) -> dict[str, Any]:
    """A preset's values, checked against the schema (errors name the preset's file)."""
    folder = presets_folder(Path(params_path))
    path = folder / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []
        raise GraphhashError(f"preset {name!r}: no {path} (presets: {', '.join([DEFAULT, *known])})")
    values = read_params_file(path)
    check(merged(defaults(), values), origin=str(path))
    return values


def merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` set, nested mappings merged key by key."""
    out = dict(base)
    for key, value in changes.items():
        out[key] = merged(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return out


def flat(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested sections as ``section.key: value`` (the keys ``dvc exp run -S`` takes)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        out.update(flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return out


def apply_presets(names: list[str], params_path: str | Path) -> dict[str, Any]:
    """Rewrite ``params_path``; return the values that differ from the defaults, as ``section.key: value``."""
    params_path = Path(params_path)
    current = read_params_file(params_path) if params_path.exists() else {}
    values = defaults()
    for section in DATA_SECTIONS:
        values = merged(values, {section: current.get(section, {})})
    for name in names:
        if name != DEFAULT:
            values = merged(values, read_preset(name, params_path))
    values = check(values, origin=str(params_path))
    applied = [name for name in names if name != DEFAULT]  # none: the committed file's text, byte for byte
    write_text(params_path, render(values, header=f"# Presets applied: {' '.join(applied)}.\n{HEADER}" if applied
                                   else HEADER))  # fmt: skip
    base = flat(defaults())
    return {key: value for key, value in flat(values).items() if base[key] != value}
