"""The whole of params.yaml: every section in file order, checked together, and written from the schema.

``render`` writes a params file from values, each key with its description as a comment, so that the
committed params.yaml (the defaults: ``render(defaults())``) and what ``graphhash preset`` writes come from
the one schema. Stages do not import this module: each loads only its own sections.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from graphhash.errors import GraphhashError
from graphhash.params import PARAMS_FILE, Section, read_params_file, validate
from graphhash.params.baselines import BaselinesParams
from graphhash.params.codes import CodesParams
from graphhash.params.evaluate import EvaluateParams
from graphhash.params.extract import ExtractParams
from graphhash.params.graph import GraphParams
from graphhash.params.hash import HashParams
from graphhash.params.index import IndexParams
from graphhash.params.neighbours import NeighboursParams
from graphhash.params.prepare import PrepareParams
from graphhash.params.represent import RepresentParams

SECTIONS: tuple[type[Section], ...] = (
    PrepareParams,
    ExtractParams,
    CodesParams,
    GraphParams,
    NeighboursParams,
    RepresentParams,
    HashParams,
    BaselinesParams,
    EvaluateParams,
    IndexParams,
)


def check(raw: dict[str, Any], origin: str = str(PARAMS_FILE)) -> dict[str, dict[str, Any]]:
    """Every section of ``raw``, validated, as plain values; unknown sections refused with a hint."""
    known = [model.section for model in SECTIONS]
    lines = []
    for name in raw:
        if name not in known:
            close = difflib.get_close_matches(str(name), known, n=1)
            lines.append(f"{origin}: {name}: unknown section" + (f" (did you mean '{close[0]}'?)" if close else ""))
    try:
        loaded = validate(raw, SECTIONS, origin)
    except GraphhashError as exc:
        lines += str(exc).splitlines()
    if lines:
        raise GraphhashError("\n".join(lines))
    return {section.section: section.model_dump() for section in loaded}


def check_file(path: str | Path = PARAMS_FILE) -> dict[str, dict[str, Any]]:
    return check(read_params_file(path), str(path))


def defaults() -> dict[str, dict[str, Any]]:
    """Every section's defaults, as plain values."""
    return {model.section: model().model_dump() for model in SECTIONS}


HEADER = """\
# graphhash pipeline parameters, written from the schema (graphhash.params): every key with its default
# and what it means. `dvc repro` reruns the stages whose sections changed; `dvc exp run -S hash.steps=1200`
# tries a value without editing this file; `graphhash preset paper` switches to NRDH as published.
"""


def render(values: dict[str, dict[str, Any]], header: str = HEADER) -> str:
    """A params file holding ``values`` (every section), commented from the schema."""
    lines = [header.rstrip("\n")]
    for model in SECTIONS:
        lines += ["", f"{model.section}:  # {_summary(model)}", *_render_section(model, values[model.section], 1)]
    return "\n".join(lines) + "\n"


def _render_section(model: type[BaseModel], values: dict[str, Any], depth: int) -> list[str]:
    indent, lines = "  " * depth, []
    for key, field in model.model_fields.items():
        value = values[key]
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            lines.append(f"{indent}{key}:  # {_summary(field.annotation)}")
            lines += _render_section(field.annotation, value, depth + 1)
            continue
        text = yaml.safe_dump(value, default_flow_style=True, width=1000).strip().removesuffix("\n...")
        comment = f"  # {field.description}" if field.description else ""
        lines.append(f"{indent}{key}: {text}{comment}")
    return lines


def _summary(model: type[BaseModel]) -> str:
    return (model.__doc__ or model.__name__).strip().splitlines()[0]
