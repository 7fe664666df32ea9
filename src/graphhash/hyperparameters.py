"""Hyperparameters declared once: the keyword-only arguments of a layer's or an estimator's ``__init__``.

Each is written with its type, its constraints (pydantic ``Annotated`` metadata) and its default, in the
signature. ``@checked`` enforces them when the object is built (a bool is never a number), and
``graphhash.params`` builds the matching params.yaml section from the same signature (``declared``), so a
default or a range has one home. A rule across several hyperparameters is the class's ``check``
classmethod, raising ``HyperparameterError``; both the constructor and the params schema call it.

The types below are the constraints that hyperparameters share, declared once: a signature or a params section
names them (``bits: Bits``) instead of restating a range.
"""

from __future__ import annotations

import inspect
import re
import typing
from typing import Annotated, Any

from pydantic import ConfigDict, Field, validate_call

checked = validate_call(config=ConfigDict(strict=True, arbitrary_types_allowed=True))

Bits = Annotated[int, Field(ge=1, le=4096)]  # a code length
Seed = Annotated[int, Field(ge=0)]
Count = Annotated[int, Field(ge=1)]
Positive = Annotated[float, Field(gt=0.0)]
NonNegative = Annotated[float, Field(ge=0.0)]
Unit = Annotated[float, Field(ge=0.0, le=1.0)]  # a weight or a probability, 0 and 1 included
Fraction = Annotated[float, Field(gt=0.0, lt=1.0)]  # 0 and 1 excluded
Iterations = Annotated[int, Field(ge=1, le=10_000)]  # rounds of an alternating or iterative fit
Steps = Annotated[int, Field(ge=1, le=10_000_000)]  # optimiser steps, whatever the number of items
BatchSize = Annotated[int, Field(ge=2, le=1_000_000)]  # items per optimiser step (batch norm needs two)
LearningRate = Annotated[float, Field(gt=0.0, le=10.0)]
Width = Annotated[int, Field(ge=1, le=65_536)]  # a layer's width


class Configurable:
    """A registered class whose hyperparameters are the keyword-only arguments of its ``__init__`` (``declared``:
    params.yaml's sub-section of its name comes from them); ``check`` holds rules across several of them."""

    @classmethod
    def check(cls, **hyperparameters: Any) -> None:
        """Rules across several hyperparameters (``HyperparameterError``); none by default."""


class HyperparameterError(ValueError):
    """A rule across hyperparameters is broken; ``key`` names the one to change."""

    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}")
        self.key, self.message = key, message


def declared(cls: type) -> dict[str, tuple[Any, Any, str]]:
    """``{name: (annotation, default, description)}`` of ``cls``'s hyperparameters: its ``__init__``'s
    keyword-only arguments, described by the ``Args:`` of the class docstring (or of a base class's). An
    ``__init__`` that passes ``**options`` on to its base's also has the base's (listed first)."""
    described: dict[str, str] = {}
    for klass in reversed(cls.__mro__):  # a subclass inherits its base's descriptions and may override them
        described.update(arguments(klass.__doc__ or ""))
    found: dict[str, tuple[Any, Any, str]] = {}
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        init = vars(klass)["__init__"]
        hints = typing.get_type_hints(init, include_extras=True)
        parameters = inspect.signature(init).parameters.values()
        own = {p.name: (hints[p.name], p.default, described.get(p.name, ""))
               for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY}  # fmt: skip
        found = {**own, **found}
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
            break
    return found


def arguments(docstring: str) -> dict[str, str]:
    """The entries of a docstring's ``Args:`` block, ``name: text`` (``a, b: text`` describes both)."""
    found: dict[str, str] = {}
    lines = inspect.cleandoc(docstring).splitlines()
    if "Args:" not in lines:
        return found
    current: list[str] = []
    for line in lines[lines.index("Args:") + 1 :]:
        if not line.strip() or not line.startswith(" "):
            break
        entry = re.match(r"^ {4}([\w, ]+): (.*)$", line)
        if entry:
            current = [name.strip() for name in entry[1].split(",")]
            for name in current:
                found[name] = entry[2].strip()
        else:
            for name in current:
                found[name] += " " + line.strip()
    return found
