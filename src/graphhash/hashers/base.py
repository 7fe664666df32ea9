"""What every hasher is: built as ``Hasher(bits, seed, **hyperparameters)``, fitted on the training items, then
encoding any items to bool codes (n, bits), in the scikit-learn style. Fitted state is plain arrays (or torch modules
for the trained ones).

A concrete hasher names itself with ``method``, its name in ``baselines.methods`` and in the code files; defining
the class registers it (``registered``), so the registry ``graphhash.hashers.HASHERS`` is built from the classes
themselves. Its hyperparameters are the keyword-only arguments of its ``__init__``, declared once there
(``graphhash.hyperparameters``), where params.yaml's ``baselines.<method>`` section comes from.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from graphhash.hyperparameters import Bits, Configurable, Seed, checked

_REGISTERED: dict[str, type[Hasher]] = {}


class Hasher(Configurable):
    """``fit(x)`` on training features (n, D), then ``encode(x)``: bool codes (n, bits).

    Class attributes: ``method`` (the registry's key; empty on the shared bases), ``crossmodal`` (True when ``fit``
    takes every modality of paired items at once: ``CrossModalHasher``), ``supervised`` (True when ``fit`` also
    takes the training items' labels).
    """

    method: ClassVar[str] = ""
    crossmodal: ClassVar[bool] = False
    supervised: ClassVar[bool] = False

    def __init_subclass__(cls, **options: object) -> None:
        super().__init_subclass__(**options)
        if "method" in vars(cls):
            if cls.method in _REGISTERED:
                raise TypeError(f"hasher {cls.method!r} is defined twice: {_REGISTERED[cls.method]} and {cls}")
            _REGISTERED[cls.method] = cls

    @checked
    def __init__(self, bits: Bits, seed: Seed):
        self.bits, self.seed = bits, seed

    @property
    def name(self) -> str:
        """The class's name, as messages give it."""
        return type(self).__name__

    def fit(self, x: np.ndarray) -> Hasher:
        raise NotImplementedError

    def encode(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError


def registered() -> dict[str, type[Hasher]]:
    """Every hasher defined so far, by ``method``: the single-modality ones first, then the cross-modal ones, each in
    the order they were defined."""
    return dict(sorted(_REGISTERED.items(), key=lambda item: item[1].crossmodal))
