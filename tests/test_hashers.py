"""The hashers' registry: built from the classes themselves, so that a new hasher is one class in one module."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import numpy as np
import pytest

import graphhash.hashers
from graphhash.hashers import HASHERS
from graphhash.hashers.base import _REGISTERED, Hasher, registered
from graphhash.params import options_section


def defined_hashers() -> dict[str, type]:
    """Every class of every module of the hashers package that names a ``method``, found by walking the modules."""
    found = {}
    for module_info in pkgutil.iter_modules(graphhash.hashers.__path__):
        module = importlib.import_module(f"graphhash.hashers.{module_info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and vars(cls).get("method"):
                found[cls.method] = cls
    return found


def test_the_registry_holds_every_hasher_class_by_its_method_single_modality_first():
    assert defined_hashers() == HASHERS
    kinds = [cls.crossmodal for cls in HASHERS.values()]
    assert kinds == sorted(kinds)  # every single-modality hasher before every cross-modal one
    assert list(HASHERS)[:4] == ["lsh", "pcah", "itq", "sh"]  # the order they are defined in, within a kind
    assert all(issubclass(cls, Hasher) for cls in HASHERS.values())


@pytest.fixture
def scratch_method():
    """A method name for a hasher defined by a test, taken out of the registry afterwards."""
    yield "scratch"
    _REGISTERED.pop("scratch", None)


def test_a_new_hasher_is_one_class_registered_with_its_hyperparameters_section(scratch_method):
    class Thresholds(Hasher):
        """Each bit: one feature above its training median.

        Args:
            shift: added to every median
        """

        method = scratch_method

        def __init__(self, bits: int, seed: int, *, shift: float = 0.0):
            super().__init__(bits, seed)
            self.shift = shift

        def fit(self, x):
            self.medians_ = np.median(x[:, : self.bits], axis=0) + self.shift
            return self

        def encode(self, x):
            return x[:, : self.bits] >= self.medians_

    assert registered()[scratch_method] is Thresholds
    section = options_section(scratch_method, Thresholds)
    assert section().model_dump() == {"shift": 0.0}
    assert section.model_fields["shift"].description == "added to every median"
    x = np.arange(12.0).reshape(4, 3)
    assert Thresholds(2, 0).fit(x).encode(x).tolist() == [[False, False], [False, False], [True, True], [True, True]]


def test_a_method_defined_twice_is_refused(scratch_method):
    class First(Hasher):
        method = scratch_method

    with pytest.raises(TypeError, match="defined twice"):

        class Second(Hasher):
            method = scratch_method

    assert registered()[scratch_method] is First
