"""The schema of ``params.yaml`` and its validation.

Every stage validates the sections it reads when it starts, and reports every bad key at once, one line
each, naming the key: a misspelled key, a missing one, a wrong type, a value out of range or not among the
choices. Stages then read their params as attributes (``params.extract.image_size``).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml

from graphhash.errors import GraphhashError


@dataclass(frozen=True)
class Field:
    """One param: the accepted types, the choices for a string, the inclusive range for a number."""

    types: tuple[type, ...]
    choices: tuple[Any, ...] = ()
    min: float | None = None
    max: float | None = None

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not acceptable, or None when it is."""
        # YAML gives bools for yes/no/true/false; a bool is never a number here.
        if (isinstance(value, bool) and bool not in self.types) or not isinstance(value, self.types):
            names = " or ".join(t.__name__ for t in self.types)
            return f"{value!r} is not a {names}"
        if isinstance(value, str):
            if self.choices and value not in self.choices:
                return f"{value!r} is not one of: {', '.join(map(str, self.choices))}"
            return None
        if self.min is not None and value < self.min:
            return f"{value!r} is out of range: must be >= {self.min}"
        if self.max is not None and value > self.max:
            return f"{value!r} is out of range: must be <= {self.max}"
        return None


FILTERS = ("gcn", "cheby", "lanczos", "spline", "fourier", "none")

# A size is a count (int >= 1) or a fraction (float in (0, 1)); _cross_checks checks its value.
SIZE = Field((int, float))

SCHEMA: dict[str, dict[str, Field]] = {
    "prepare": {
        "source": Field((str,), choices=("digits", "folder", "cifar10", "npy")),
        "path": Field((str,)),
        "seed": Field((int,), min=0),
        "split": Field((str,), choices=("auto", "random")),
        "query_size": SIZE,
        "train": Field((str,), choices=("database", "disjoint")),
        "train_size": SIZE,
        "limit_per_class": Field((int,), min=0),
    },
    "extract": {
        "backbone": Field((str,), choices=("efficientnet_lite0", "vit_b_16")),
        "weights": Field((str,)),
        "weights_path": Field((str,)),
        "image_size": Field((int,), min=32, max=1024),
        "batch_size": Field((int,), min=1, max=65536),
        "num_workers": Field((int, str), choices=("auto",), min=0, max=64),
        "device": Field((str,), choices=("auto", "cpu", "cuda")),
        "on_bad_image": Field((str,), choices=("fail", "skip")),
    },
    "represent": {
        "filters": Field((list,)),
        "graph": Field((str,), choices=("batch", "knn")),
        "gcn_propagation": Field((str,), choices=("nrdh", "kipf")),
        "cheby_order": Field((int,), min=1, max=100),
        "lanczos_steps": Field((int,), min=1, max=100000),
        "spectral_basis": Field((str,), choices=("bspline", "poly")),
        "spectral_knots": Field((int,), min=1, max=100),
        "batch_nodes": Field((int,), min=2, max=100000),
        "rho": Field((int, float), min=-1.0, max=1.0),
        "p": Field((int, float), min=0.0, max=1.0),
        "hidden": Field((int,), min=1, max=65536),
        "alpha": Field((int, float), min=0.0),
        "beta": Field((int, float), min=0.0),
        "epochs": Field((int,), min=1, max=100000),
        "lr": Field((float,), min=0.0),
        "graphs_per_step": Field((int,), min=1),
        "seed": Field((int,), min=0),
    },
    "hash": {
        "bits": Field((list,)),
        "input": Field((str,), choices=("features", "graph")),
        "input_p": Field((int, float), min=0.0, max=1.0),
        "target": Field((str,), choices=("representation", "rotated")),
        "mu": Field((int, float), min=0.0),
        "omega": Field((int, float), min=0.0),
        "epochs": Field((int,), min=1, max=100000),
        "batch_size": Field((int,), min=2, max=1000000),
        "lr": Field((float,), min=0.0),
        "negative_slope": Field((int, float), min=0.0, max=1.0),
        "seed": Field((int,), min=0),
    },
    "baselines": {
        "itq_iterations": Field((int,), min=1, max=10000),
        "seed": Field((int,), min=0),
    },
    "evaluate": {
        "map_at": Field((list,)),
        "radius": Field((int,), min=0),
        "figure_queries": Field((int,), min=0),
    },
}


def _size_problem(value: int | float) -> str | None:
    """Counts are whole numbers >= 1; fractions lie strictly between 0 and 1."""
    if isinstance(value, int) and value < 1:
        return f"{value!r} must be a count >= 1 or a fraction in (0, 1)"
    if isinstance(value, float) and not 0.0 < value < 1.0:
        return f"{value!r} must be a fraction in (0, 1) or a count >= 1"
    return None


def _cross_checks(name: str, section: dict[str, Any]) -> list[tuple[str, str]]:
    """Rules that involve more than one key's type: (key, problem) pairs."""
    problems = []
    if name == "prepare":
        for key in ("query_size", "train_size"):
            value = section.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool) and (p := _size_problem(value)):
                problems.append((key, p))
        source, path = section.get("source"), section.get("path")
        if source in SCHEMA["prepare"]["source"].choices and source != "digits" and path == "":
            problems.append(("path", f"is empty but source '{source}' reads its data from a path"))
    if name == "hash" and isinstance(section.get("bits"), list):
        bits = section["bits"]
        if not bits or any(isinstance(b, bool) or not isinstance(b, int) or not 1 <= b <= 4096 for b in bits):
            problems.append(("bits", f"{bits!r} must be a non-empty list of code lengths in [1, 4096]"))
        elif len(set(bits)) != len(bits):
            problems.append(("bits", f"{bits!r} lists a code length twice"))
    if name == "represent" and isinstance(section.get("filters"), list):
        filters = section["filters"]
        if not filters or any(f not in FILTERS for f in filters) or len(set(filters)) != len(filters):
            problems.append(("filters", f"{filters!r} must be a non-empty list of distinct filters from: "
                             + ", ".join(FILTERS)))  # fmt: skip
    if name == "represent" and section.get("spectral_basis") == "bspline":
        knots = section.get("spectral_knots")
        if isinstance(knots, int) and not isinstance(knots, bool) and knots < 4:
            problems.append(("spectral_knots", f"{knots!r} is too few for cubic B-splines: must be >= 4"))
    if name == "evaluate" and isinstance(section.get("map_at"), list):
        ks = section["map_at"]
        if not ks or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in ks):
            problems.append(("map_at", f"{ks!r} must be a non-empty list of cut-offs K >= 1"))
    return problems


def validate(params: dict[str, Any], sections: list[str], origin: str = "params.yaml") -> None:
    """Raise one GraphhashError listing every bad key of ``sections`` (one line each)."""
    lines = []
    for name in sections:
        schema = SCHEMA[name]
        section = params.get(name)
        if not isinstance(section, dict):
            lines.append(f"{origin}: section '{name}' is missing or not a mapping")
            continue
        for key, value in section.items():
            if key not in schema:
                close = difflib.get_close_matches(str(key), schema, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                lines.append(f"{origin}: {name}.{key}: unknown key{hint}")
            elif (problem := schema[key].problem(value)) is not None:
                lines.append(f"{origin}: {name}.{key}: {problem}")
        for key in schema:
            if key not in section:
                lines.append(f"{origin}: {name}.{key}: missing key")
        lines += [f"{origin}: {name}.{key}: {problem}" for key, problem in _cross_checks(name, section)]
    if lines:
        raise GraphhashError("\n".join(lines))


def load_params(path: str | Path, *sections: str) -> SimpleNamespace:
    """Read ``params.yaml``, validate ``sections`` and return them as ``params.<section>.<key>``."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise GraphhashError(f"{path}: cannot read params: {exc}".replace("\n", " ")) from exc
    if not isinstance(raw, dict):
        raise GraphhashError(f"{path}: params file must be a mapping of sections")
    validate(raw, list(sections), origin=str(path))
    return SimpleNamespace(**{name: SimpleNamespace(**raw[name]) for name in sections})


def with_filter(represent: SimpleNamespace, name: str) -> SimpleNamespace:
    """The ``represent`` params of one stage of the filter matrix: ``filter`` set to ``name``."""
    if name not in represent.filters:
        raise GraphhashError(f"represent.filters: {name!r} is not listed ({', '.join(represent.filters)})")
    return SimpleNamespace(**vars(represent), filter=name)
