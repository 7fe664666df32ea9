"""The layers of the package, enforced by import-linter's contracts in pyproject.toml: the repository keeps them,
and a forbidden import added to a copy of the code breaks the contract that names it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(code: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` with the repository's contracts on the packages under ``code`` (graphhash/, stages/)."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", str(REPO / "pyproject.toml")], cwd=code, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


@pytest.fixture
def code(tmp_path) -> Path:
    """A copy of the package and of the stage scripts."""
    shutil.copytree(REPO / "src" / "graphhash", tmp_path / "graphhash", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "stages", tmp_path / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_the_repository_keeps_every_contract(code):
    done = lint_imports(code)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Contracts: 5 kept, 0 broken." in done.stdout


def append_import(module: Path, line: str) -> None:
    module.write_text(module.read_text(encoding="utf-8") + f"\n{line}  # noqa\n", encoding="utf-8")


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        ("graphhash/evaluation/metrics.py", "from graphhash.hashers.linear import ITQ", "imports no hasher"),
        ("graphhash/nrdh/hashnet.py", "from graphhash.params.hash import HashParams", "nrdh imports nothing from"),
        ("graphhash/nrdh/cnn/images.py", "from graphhash.data.sources import Source", "nrdh imports nothing from"),
        ("graphhash/retrieval/server.py", "import graphhash.pipeline.hash", "imports nothing from pipeline"),
        ("graphhash/files/codes.py", "import graphhash.index", "each layer imports only the layers below it"),
        ("stages/prepare.py", "import graphhash.retrieval.retriever", "a stage script is one pipeline call"),
    ],
)
def test_a_forbidden_import_breaks_its_contract(code, module, line, broken):
    append_import(code / module, line)
    done = lint_imports(code)
    assert done.returncode != 0
    assert "BROKEN" in done.stdout and broken in " ".join(done.stdout.split())


def test_a_new_module_must_be_placed_in_a_layer(code):
    """The layers contract is exhaustive: a top-level module it does not name is refused."""
    (code / "graphhash" / "scratch.py").write_text('"""A module no layer names."""\n', encoding="utf-8")
    done = lint_imports(code)
    assert done.returncode != 0 and "graphhash.scratch" in done.stdout
