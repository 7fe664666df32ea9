"""Sharing a run between machines through a DVC remote (README, "Sharing results between machines").

A temporary git + DVC repository runs graphhash's own pipeline on a few digits, commits, and pushes its
outputs to a local-folder remote. A `git clone` of it, with its own DVC cache and site cache, stands for the
second machine. Checked with the real git and dvc commands and files:

- the remote holds every output file under the MD5 of its bytes (computed here with hashlib);
- after `dvc pull` the clone's workspace is the first repository's, byte for byte (SHA-256 of every file,
  computed here), `dvc status` reports nothing changed but prepare (always_changed: it always runs), and
  `dvc repro` in the clone runs prepare and skips every other stage: nothing is recomputed;
- `dvc pull` from a remote folder that does not exist exits non-zero and checks nothing out: the clone's
  workspace holds exactly the files git brought; once the remote is right, the same clone pulls in full;
- `dvc pull` from a remote that lacks one object (an interrupted push) exits non-zero naming it and leaves
  no partial file; the output that lost the object is absent (whether DVC checks out the others depends on
  where the object sits: see the test).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import dvc_env, new_project, run_in

# graphhash's pipeline on 40 digits, trained for a few steps, one code length and one baseline: every kind of
# stage runs, quickly. One retrieval figure per code file, so that metrics/retrieval is not an empty folder
# (git carries the metrics, plots and figures: they are `cache: false` outputs).
RUN = {
    "prepare": {"limit_per_class": 4, "query_size": 1},
    "extract": {"image_size": 32, "batch_size": 40},
    "codes": {"bits": [8], "filters": ["gcn"]},
    "represent": {"steps": 3, "graphs_per_step": 4},
    "hash": {"steps": 3, "batch_size": 8},
    "baselines": {"methods": ["lsh"]},
    "evaluate": {"map_at": [10], "figure_queries": 1, "neighbours": 5},
}
# The outputs DVC caches for RUN (README, "Outputs"): what the remote carries and git does not.
CACHED_OUTPUTS = {
    "data/manifest.json",
    "data/features.h5",
    "data/neighbours.h5",
    "data/representations/gcn",
    "models/gcnae-gcn",
    "data/codes/nrdh-gcn",
    "models/nrdh-gcn",
    "data/index/nrdh-gcn-8",
    "data/codes/baselines-8",
    "data/additions",
}
# Files that must be among them (the features and the models a second machine wants without recomputing).
KEY_FILES = {
    "data/features.h5",
    "models/gcnae-gcn/8/model.pt",
    "models/nrdh-gcn/8/image/model.pt",
    "data/codes/nrdh-gcn/nrdh-gcn-8-image.h5",
    "data/index/nrdh-gcn-8/image/index.h5",
}
STAGES = [
    "prepare",
    "extract",
    "additions",
    "neighbours",
    "represent@gcn",
    "hash@gcn",
    "index@gcn-8",
    "baselines@8",
    "evaluate",
]


@dataclass(frozen=True)
class Pushed:
    repo: Path  # the first machine's repository, reproduced, committed and pushed
    store: Path  # the remote: a local folder


@pytest.fixture(scope="module")
def pushed(tmp_path_factory) -> Pushed:
    """The pipeline reproduced in a temporary repository, committed, with a default remote it was pushed to."""
    base = tmp_path_factory.mktemp("remote")
    repo = new_project(base / "first" / "repo", RUN)
    run_in(repo, "dvc", "repro", "-q")
    run_in(repo, "git", "add", "-A")
    run_in(repo, "git", "commit", "-qm", "first run")
    store = base / "store"
    run_in(repo, "dvc", "remote", "add", "-d", "storage", str(store))
    run_in(repo, "git", "commit", "-qm", "remote", ".dvc/config")
    run_in(repo, "dvc", "push")
    return Pushed(repo, store)


def second_machine(pushed: Pushed, folder: Path, remote_url: Path | None = None) -> Path:
    """A git clone of the first repository in ``folder`` (its own DVC cache and site cache); ``remote_url``
    overrides the remote's folder in the clone's local config."""
    clone = folder / "repo"
    folder.mkdir(parents=True)
    run_in(folder, "git", "clone", "-q", str(pushed.repo), str(clone))
    if remote_url is not None:
        run_in(clone, "dvc", "remote", "modify", "--local", "storage", "url", str(remote_url))
    return clone


def dvc_fails(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """Run dvc in ``cwd``; it must exit non-zero."""
    done = subprocess.run([str(Path(sys.executable).parent / "dvc"), *args], cwd=cwd, env=dvc_env(cwd),
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode != 0, f"dvc {' '.join(args)} succeeded:\n{done.stdout}\n{done.stderr}"
    return done


def is_workspace(relative: Path) -> bool:
    """Whether a path belongs to the workspace: not git's or DVC's own state (cache, tmp, local config)."""
    parts = relative.parts
    if parts[0] == ".git":
        return False
    return not (parts[0] == ".dvc" and parts[1] in ("cache", "tmp", "config.local"))


def workspace_digests(repo: Path) -> dict[str, str]:
    """SHA-256 of every workspace file, by its path relative to ``repo``."""
    return {
        path.relative_to(repo).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(repo.rglob("*"))
        if path.is_file() and is_workspace(path.relative_to(repo))
    }


def git_files(repo: Path, *options: str) -> set[str]:
    return set(run_in(repo, "git", "ls-files", "-z", *options).split("\0")) - {""}


def dvc_carried(repo: Path) -> set[str]:
    """The workspace files git ignores: the ones only DVC can bring to another machine."""
    ignored = git_files(repo, "--others", "--ignored", "--exclude-standard")
    return {name for name in ignored if is_workspace(Path(name))}


def assert_nothing_checked_out(clone: Path) -> None:
    """The clone's workspace holds exactly the files git brought: no output, no partial file."""
    assert set(workspace_digests(clone)) == git_files(clone)
    for output in CACHED_OUTPUTS:
        assert not (clone / output).exists(), output


def test_the_remote_holds_every_output_file_under_the_md5_of_its_bytes(pushed):
    carried = dvc_carried(pushed.repo)
    assert carried >= KEY_FILES
    outside = {name for name in carried if not any(name == out or name.startswith(f"{out}/") for out in CACHED_OUTPUTS)}
    assert outside == set()  # every file only DVC carries belongs to a cached output
    for name in carried:
        data = (pushed.repo / name).read_bytes()
        md5 = hashlib.md5(data).hexdigest()
        assert (pushed.store / "files" / "md5" / md5[:2] / md5[2:]).read_bytes() == data, name


def test_a_clone_pulls_the_run_byte_for_byte_and_recomputes_nothing(pushed, tmp_path):
    clone = second_machine(pushed, tmp_path / "second")
    assert_nothing_checked_out(clone)
    assert not (clone / ".dvc" / "cache").exists()  # nothing shared with the first repository but the remote

    run_in(clone, "dvc", "pull")
    first = workspace_digests(pushed.repo)
    assert workspace_digests(clone) == first
    assert set(first) >= KEY_FILES
    for repo in (pushed.repo, clone):
        assert json.loads(run_in(repo, "dvc", "status", "--json")) == {"prepare": ["always changed"]}

    reproduced = run_in(clone, "dvc", "repro")
    assert "Running stage 'prepare'" in reproduced
    for stage in STAGES[1:]:
        assert f"Stage '{stage}' didn't change, skipping" in reproduced, stage
        assert f"Running stage '{stage}'" not in reproduced, stage
    assert workspace_digests(clone) == first  # prepare rewrote the same manifest


def test_a_pull_from_a_missing_remote_folder_fails_and_checks_out_nothing(pushed, tmp_path):
    missing = tmp_path / "no-such-store"
    clone = second_machine(pushed, tmp_path / "second", remote_url=missing)

    failed = dvc_fails(clone, "pull")
    # DVC finds no object in a folder that is not there, warns of missing cache files, and names each output.
    assert "ERROR: failed to pull data from the cloud - Checkout failed for following targets:" in failed.stderr
    listed = failed.stderr.split("Checkout failed for following targets:\n")[1].split("\nIs your cache")[0]
    assert set(listed.splitlines()) == CACHED_OUTPUTS
    assert not missing.exists()
    assert_nothing_checked_out(clone)

    run_in(clone, "dvc", "remote", "modify", "--local", "storage", "url", str(pushed.store))
    run_in(clone, "dvc", "pull")
    assert workspace_digests(clone) == workspace_digests(pushed.repo)


@pytest.mark.parametrize(
    ("lost_file", "complete_nothing"),
    [
        ("models/nrdh-gcn/8/image/model.pt", True),  # listed in a folder output's .dir object: the transfer fails
        ("data/features.h5", False),  # a file output's object: DVC reports it missing, checks the others out
    ],
)
def test_a_pull_from_a_remote_lacking_one_object_fails_naming_it_and_leaves_no_partial_file(
    pushed, tmp_path, lost_file, complete_nothing
):
    """One object is gone from a copy of the remote (an interrupted push). The pull fails and names it; every
    workspace file is either absent or the first machine's bytes, and the output that lost an object is
    absent. A lost object inside a folder output stops the pull before any checkout; a lost file output's
    object does not stop DVC from checking out every other output."""
    partial = tmp_path / "partial-store"
    shutil.copytree(pushed.store, partial)
    md5 = hashlib.md5((pushed.repo / lost_file).read_bytes()).hexdigest()
    lost = partial / "files" / "md5" / md5[:2] / md5[2:]
    lost.unlink()
    clone = second_machine(pushed, tmp_path / "second", remote_url=partial)

    failed = dvc_fails(clone, "pull")
    assert "ERROR: failed to pull data from the cloud" in failed.stderr
    if complete_nothing:
        assert f"ERROR: failed to transfer '{md5}'" in failed.stderr and str(lost) in failed.stderr
        assert_nothing_checked_out(clone)
    else:
        assert f"md5: {md5}" in failed.stderr
        assert f"Checkout failed for following targets:\n{lost_file}\n" in failed.stderr
    first = workspace_digests(pushed.repo)
    pulled = workspace_digests(clone)
    assert {name: digest for name, digest in pulled.items() if first.get(name) != digest} == {}
    assert not (clone / lost_file).exists()

    run_in(clone, "dvc", "remote", "modify", "--local", "storage", "url", str(pushed.store))
    run_in(clone, "dvc", "pull")
    assert workspace_digests(clone) == first
