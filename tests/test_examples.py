"""The examples in the docstrings of the public entry points run and show what they say (doctest)."""

from __future__ import annotations

import doctest
import importlib

import pytest

RUNNABLE = [
    "graphhash.quantisation",
    "graphhash.hashers.linear",
    "graphhash.nrdh.autoencoder",
    "graphhash.nrdh.hashnet",
    "graphhash.files.features",
]
NEED_A_RUN = ["graphhash.retrieval.retriever", "graphhash.nrdh.encoder"]  # their examples open a trained run


@pytest.mark.parametrize("name", RUNNABLE)
def test_the_examples_run(name, one_torch_thread):
    found = doctest.testmod(importlib.import_module(name), optionflags=doctest.NORMALIZE_WHITESPACE)
    assert found.attempted > 0 and found.failed == 0


@pytest.mark.parametrize("name", NEED_A_RUN)
def test_the_examples_that_need_a_run_are_there(name):
    examples = [e for test in doctest.DocTestFinder().find(importlib.import_module(name)) for e in test.examples]
    assert examples and all(e.options.get(doctest.SKIP) for e in examples)
