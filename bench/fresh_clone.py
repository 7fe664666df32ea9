"""A fresh machine's first run: README command 1 in a fresh clone of the committed repository, timed, and its outputs
compared with the committed ones.

The script clones the repository's last commit into a scratch folder, takes README command 1 from the README itself
(the first command of "Quick start": set up, then ``dvc repro`` on the embedded default) and runs its set-up part
and its ``dvc repro`` apart, timing each; then ``dvc repro --force`` (every stage, the evaluator's first compilation
included). After each run it lists the outputs whose bytes differ from those the commit records (dvc.lock's hashes
and the metrics, curves and figures git tracks): none, when this machine reproduces the committed run. With
``--tests`` it also runs README command 2 (set up, then the tests). The figures go into ``docs/benchmarks.md``.

    python bench/fresh_clone.py             # about 8 minutes on 2 cores (the install, then two runs)
    python bench/fresh_clone.py --tests     # and the test suite: about 20 minutes more
"""

from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
import time
from pathlib import Path

import yaml
from common import BENCHMARKS, REPO, write_report

QUICK_START = re.compile(r"^\d\. .*?\n\n\s*```bash\n\s*(.+?)\n\s*```", re.M | re.S)


def readme_commands() -> list[str]:
    """README's two commands for a fresh machine, in order: the pipeline's, the tests'."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return [command.strip() for command in QUICK_START.findall(section)]


def timed(command: str, cwd: Path) -> float:
    """Seconds ``command`` (bash) took in ``cwd``; a failure stops the benchmark with its output."""
    start = time.perf_counter()
    done = subprocess.run(["bash", "-c", command], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{command!r} failed in {cwd}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def output_hashes(lock: str) -> dict[str, str]:
    """Every output of a dvc.lock's text, by path: its MD5."""
    stages = yaml.safe_load(lock)["stages"].values()
    return {out["path"]: out.get("md5") for stage in stages for out in stage.get("outs", [])}


def changed_outputs(clone: Path) -> list[str]:
    """The outputs whose bytes differ from the commit's: dvc.lock's output hashes, and the files git tracks."""
    git = lambda *args: subprocess.run(["git", *args], cwd=clone, capture_output=True, text=True, check=True).stdout  # noqa: E731
    committed = output_hashes(git("show", "HEAD:dvc.lock"))
    now = output_hashes((clone / "dvc.lock").read_text(encoding="utf-8"))
    tracked = [line[3:] for line in git("status", "--porcelain", "--", "metrics").splitlines() if line.strip()]
    return sorted({*(path for path, md5 in now.items() if committed.get(path) != md5), *tracked})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tests", action="store_true", help="also README command 2 (the test suite)")
    args = parser.parse_args()
    pipeline, tests = readme_commands()
    setup, _, repro = pipeline.rpartition(" && ")
    if repro != "dvc repro":
        raise SystemExit(f"README command 1 does not end in dvc repro: {pipeline!r}")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                            check=True).stdout.strip()  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "graphhash"
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
        activate = ". .venv/bin/activate && "
        figures = [("set-up", setup, timed(setup, clone))]
        figures.append(("`dvc repro`", repro, timed(activate + repro, clone)))
        differ = changed_outputs(clone)
        figures.append(("`dvc repro --force`", "dvc repro --force", timed(activate + "dvc repro --force", clone)))
        differ_forced = changed_outputs(clone)
        if args.tests:
            figures.append(("README command 2", tests, timed(tests, clone)))
    rows = [f"| {name} | {seconds:.1f} |" for name, _, seconds in figures]
    differences = f"after `dvc repro` {', '.join(differ) or 'none'}; after `dvc repro --force` "
    differences += ", ".join(differ_forced) or "none"
    lines = [f"A fresh clone of {commit}, README command 1 (`{pipeline}`), its set-up and `dvc repro` timed apart:",
             "", "| step | seconds |", "| --- | ---: |", *rows, "",
             f"Outputs whose bytes differ from the commit's: {differences}."]  # fmt: skip
    write_report(BENCHMARKS, lines, "fresh_clone")


if __name__ == "__main__":
    main()
