"""DVC deps that cannot drift: each stage's code deps in dvc.yaml are exactly the modules it imports.

The import closure is computed here from the source (``ast``), independently of the package: every
``import graphhash...`` and ``from graphhash... import ...`` in a stage script and, transitively, in the
modules it reaches (imports inside functions count too), with each package's ``__init__.py``. Running this
file prints each stage's closure; ``python tests/test_deps.py --write`` puts them into dvc.yaml after an import
changes.
"""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import PIPELINE_FILES, dvc_env

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
PACKAGE = "graphhash"


def module_file(name: str) -> Path | None:
    """The file of module ``name`` under src/, or None when it is not a module of the package."""
    base = SRC.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(path: Path) -> set[str]:
    """The package's modules ``path`` imports directly, with their parent packages."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        for name in names:
            if name.split(".")[0] != PACKAGE:
                continue
            parts = name.split(".")
            found |= {".".join(parts[:i]) for i in range(1, len(parts) + 1) if module_file(".".join(parts[:i]))}
    return found


def closure(script: Path) -> list[str]:
    """Every package module a script imports, transitively, as repository paths (sorted)."""
    seen: set[str] = set()
    todo = list(imported_modules(script))
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += imported_modules(module_file(name))
    return sorted(module_file(name).relative_to(REPO).as_posix() for name in seen)


def dvc_stages() -> dict:
    return yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


@pytest.mark.parametrize("stage", sorted(dvc_stages()))
def test_code_deps_are_the_import_closure(stage):
    """A stage's src/ deps in dvc.yaml equal the modules its script imports, transitively: no more, no less."""
    definition = dvc_stages()[stage]
    script = f"stages/{stage}.py"
    assert script in definition["deps"] and f"python {script} " in definition["cmd"]
    declared = sorted(dep for dep in definition["deps"] if dep.startswith("src/"))
    assert declared == closure(REPO / script), f"dvc.yaml's deps for {stage} differ from its imports"


def test_closure_follows_imports_transitively_and_inside_functions(tmp_path):
    """The closure of a stage reaches a module imported by a module it imports, and lazy imports count."""
    represent = closure(REPO / "stages" / "represent.py")
    for module in ("graphs/filters/lanczos.py", "graphs/batch.py", "files/hdf5.py", "errors.py"):
        assert f"src/graphhash/{module}" in represent
    assert "src/graphhash/evaluation/metrics.py" not in represent
    script = tmp_path / "lazy.py"
    script.write_text("def f():\n    from graphhash.files import codes\n", encoding="utf-8")
    assert "src/graphhash/files/codes.py" in closure(script)


def dvc(cwd: Path, *args: str) -> str:
    env = dvc_env(cwd)
    command = [str(Path(sys.executable).parent / "dvc"), *args] if args[0] != "git" else list(args)
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.parametrize("module", ["graphs/filters/lanczos.py", "files/codes.py", "data/storage.py"])
def test_editing_a_module_changes_exactly_the_stages_that_import_it(tmp_path, module):
    """With every stage committed (stand-in outputs: ``dvc status`` compares hashes, nothing needs to run),
    editing one module makes ``dvc status`` name exactly the stages whose scripts import it."""
    from dvc.repo import Repo

    work = tmp_path / "repo"
    work.mkdir()
    for name in ("params.yaml", *PIPELINE_FILES):
        (work / name).parent.mkdir(exist_ok=True)
        shutil.copy(REPO / name, work / name)
    for folder in ("stages", "src"):
        shutil.copytree(REPO / folder, work / folder, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    dvc(work, "git", "init", "-q")
    dvc(work, "init", "-q")
    with Repo(str(work)) as repo:
        outs = [Path(out.fs_path) for stage in repo.index.stages for out in stage.outs]
    for out in outs:  # folders (models, baseline codes, curves, figures) have no suffix
        target = out / "stand-in" if not out.suffix else out
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("stand-in\n", encoding="utf-8")
    dvc(work, "commit", "-f", "-q")
    assert set(json.loads(dvc(work, "status", "--json"))) <= {"prepare"}  # prepare is always changed

    path = f"src/graphhash/{module}"
    (work / path).write_text((work / path).read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    status = json.loads(dvc(work, "status", "--json"))
    reported = sorted(stage for stage, entries in status.items() if any(
        path in entry.get("changed deps", {}) for entry in entries if isinstance(entry, dict)))  # fmt: skip
    importers = sorted(
        stage for stage in status_names(work) if path in closure(REPO / "stages" / f"{stage.split('@')[0]}.py")
    )
    assert reported == importers and importers
    assert set(status) - set(reported) <= {"prepare"}


def status_names(work: Path) -> list[str]:
    """Every stage of the pipeline, matrix stages expanded (``represent@gcn-16``)."""
    return [line.split()[0] for line in dvc(work, "stage", "list", "--name-only").split()]


def rewrite_deps(text: str) -> str:
    """dvc.yaml's text with each stage's src/ deps replaced by its script's import closure, after its other deps
    (nothing else changes)."""
    out, pending = [], []  # pending: the closure to write where the current deps list ends
    for line in text.splitlines(keepends=True):
        item = line.lstrip().startswith("- ")
        if pending and not item:
            out += pending
            pending = []
        if line.strip().startswith("- src/"):
            continue
        out.append(line)
        name = line.strip().removeprefix("- stages/").removesuffix(".py")
        if line.strip().startswith("- stages/") and name in dvc_stages():
            indent = line[: len(line) - len(line.lstrip())]
            pending = [f"{indent}- {path}\n" for path in closure(REPO / "stages" / f"{name}.py")]
    return "".join(out + pending)


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:  # rewrite dvc.yaml's src/ deps after an import changed
        dvc_yaml = REPO / "dvc.yaml"
        dvc_yaml.write_text(rewrite_deps(dvc_yaml.read_text(encoding="utf-8")), encoding="utf-8")
    for name in sorted(dvc_stages()):
        print(f"{name}:")
        for path in closure(REPO / "stages" / f"{name}.py"):
            print(f"      - {path}")
