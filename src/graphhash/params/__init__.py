"""The typed schema of ``params.yaml``: one pydantic model per section, one module per section.

Every value is declared once, with its type, its range or choices and its default (the committed
params.yaml holds exactly the defaults; a test checks it). Types are strict: a bool is never a number, an
int is accepted where a float is asked for, and so is a number written as a string in scientific notation
(``lr: 1e-3``, which YAML reads as a string). Unknown keys are refused; keys left out take their default.
Choices that name things (sources, backbones, filters, baselines) come from those things' registries, and
the hyperparameters of a filter or a baseline come from its signature (``graphhash.hyperparameters``).

A stage loads the sections it reads, ``prepare, = load_params(PrepareParams)``, and gets frozen, typed
objects; any bad key stops it with one line per key, naming ``section.key``. Each section lives in its own
module (``graphhash.params.prepare``...) so that a stage imports only what its sections name.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Annotated, Any, ClassVar

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator
from pydantic import model_validator as _model_validator

from graphhash.errors import GraphhashError
from graphhash.hyperparameters import declared

PARAMS_FILE = Path("params.yaml")


class Section(BaseModel):
    """One section of params.yaml (or a sub-section); ``section`` is its key in the file."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    section: ClassVar[str] = ""

    def options(self, name: str) -> dict[str, Any]:
        """The hyperparameters of the registered class ``name``: its sub-section's values, or none."""
        options = getattr(self, name, None)
        return options.model_dump() if isinstance(options, Section) else {}

    def hyperparameters(self, cls: type) -> dict[str, Any]:
        """This section's values of ``cls``'s hyperparameters (``declared``): what the stage builds ``cls`` with,
        ``cls(**section.hyperparameters(cls))``."""
        return {key: getattr(self, key) for key in declared(cls)}

    @field_validator("*", mode="before")
    @classmethod
    def _numbers_from_strings(cls, value: Any, info: Any) -> Any:
        """``1e-3`` in YAML is a string: read it as the float the field asks for."""
        if isinstance(value, str) and cls.model_fields[info.field_name].annotation is float:
            try:
                return float(value)
            except ValueError:
                return value
        return value


def distinct(values: list) -> list:
    if len(set(values)) != len(values):
        raise ValueError("lists a value twice")
    return values


def names(choices: Any) -> Any:
    """A non-empty list of distinct names among ``choices`` (a ``Literal``)."""
    return Annotated[list[choices], Field(min_length=1), AfterValidator(distinct)]


def options_section(name: str, cls: type) -> type[Section] | None:
    """The sub-section of ``cls``'s hyperparameters (``declared``), checked by ``cls.check``; None if it has none."""
    if not declared(cls):
        return None
    return hyperparameters_section(cls, Section, f"{name}: the hyperparameters of {cls.__module__}.{cls.__name__}")


def hyperparameters_section(cls: type, base: type[Section], doc: str | None = None, **extra: Any) -> type[Section]:
    """A section (a subclass of ``base``, which names it) whose keys are ``cls``'s hyperparameters (``declared``:
    types, ranges, defaults and descriptions, from its signature), checked by ``cls.check``, then the ``extra``
    fields (``name=(type, Field(...))``, e.g. sub-sections)."""
    fields = declared(cls)

    def check(self: Section) -> Section:
        cls.check(**{key: getattr(self, key) for key in fields})
        return self

    return create_model(
        base.__name__.lstrip("_") + ("Params" if base is not Section else f"{cls.__name__}Options"),
        __base__=base,
        __doc__=doc or base.__doc__,
        __validators__={"check": _model_validator(mode="after")(check)},
        **{key: (annotation, Field(default, description=text)) for key, (annotation, default, text) in fields.items()},
        **extra,
    )


def options_fields(registry: dict[str, type]) -> dict[str, tuple[type[Section], Any]]:
    """One sub-section field per registered class that has hyperparameters, defaulting to their defaults."""
    sections = {name: options_section(name, cls) for name, cls in registry.items()}
    return {name: (model, Field(default_factory=model)) for name, model in sections.items() if model is not None}


def read_params_file(path: str | Path = PARAMS_FILE) -> dict[str, Any]:
    """params.yaml as a mapping of sections; an unreadable or malformed file is one line naming it."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc).replace("\n", " ")
        raise GraphhashError(f"{path}: cannot read params: {reason}") from None
    if not isinstance(raw, dict):
        raise GraphhashError(f"{path}: params file must be a mapping of sections")
    return raw


def load_params(*sections: type[Section], path: str | Path = PARAMS_FILE) -> tuple[Any, ...]:
    """The typed ``sections`` of the params file, in the order asked; every bad key at once, one line each."""
    return validate(read_params_file(path), sections, origin=str(path))


def validate(raw: dict[str, Any], sections: tuple[type[Section], ...], origin: str = str(PARAMS_FILE)) -> tuple:
    lines, loaded = [], []
    for model in sections:
        values = raw.get(model.section)
        if not isinstance(values, dict):
            lines.append(f"{origin}: section '{model.section}' is missing or not a mapping")
            continue
        try:
            loaded.append(model.model_validate(values))
        except ValidationError as exc:
            lines += [f"{origin}: {line}" for line in problems(model, exc)]
    if lines:
        raise GraphhashError("\n".join(lines))
    return tuple(loaded)


def problems(model: type[Section], exc: ValidationError) -> list[str]:
    """One line per bad key of a section: ``section.key: what is wrong`` (a union's reasons joined by "or")."""
    messages: dict[str, list[str]] = {}
    for error in exc.errors():
        loc = _keys(model, error["loc"])
        reason = error.get("ctx", {}).get("error")
        if getattr(reason, "key", None):  # a rule across hyperparameters names the one to change
            loc, message = [*loc, reason.key], reason.message
        elif error["type"] == "extra_forbidden":
            message = "unknown key" + _hint(model, loc)
        else:
            message = f"{error['msg'].removeprefix('Value error, ')} (got {error['input']!r})"
        key = ".".join([model.section, *(f"[{p}]" if isinstance(p, int) else str(p) for p in loc)]).replace(".[", "[")
        if message not in messages.setdefault(key, []):
            messages[key].append(message)
    return [f"{key}: {' or '.join(found)}" for key, found in messages.items()]


def _keys(model: type[BaseModel], loc: tuple) -> list:
    """The keys and list indices of an error's location, without the type tags pydantic adds for unions.

    A string is a key when the (sub-)section at that depth has it as a field, or when it is the last part of
    the location (an unknown key); anything else is a tag.
    """
    keys: list = []
    fields: dict | None = model.model_fields
    for index, part in enumerate(loc):
        if isinstance(part, int):
            keys.append(part)
        elif fields is not None and part in fields:
            keys.append(part)
            annotation = fields[part].annotation
            nested = isinstance(annotation, type) and issubclass(annotation, BaseModel)
            fields = annotation.model_fields if nested else None
        elif index == len(loc) - 1 and fields is not None:
            keys.append(part)
    return keys


def _hint(model: type[Section], loc: list) -> str:
    """``(did you mean 'image_size'?)`` from the keys of the (sub-)section the unknown key sits in."""
    fields: Any = model.model_fields
    for part in loc[:-1]:
        annotation = fields.get(part).annotation if isinstance(part, str) and part in fields else None
        fields = annotation.model_fields if isinstance(annotation, type) and issubclass(annotation, BaseModel) else {}
    close = difflib.get_close_matches(str(loc[-1]), list(fields), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""
