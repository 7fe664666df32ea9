"""End to end: the repository's own dvc.yaml in a temporary git repo, driven by the real dvc command."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import pytest
import yaml

from graphhash.codes import read_codes

REPO = Path(__file__).resolve().parents[1]
TINY = {
    "prepare": {"limit_per_class": 4, "query_size": 1},
    "extract": {"image_size": 32, "batch_size": 16},
    "represent": {"epochs": 1, "filters": ["gcn", "cheby"]},
    "hash": {"bits": [8, 16], "epochs": 1, "batch_size": 8},
    "evaluate": {"map_at": [10]},
}


@pytest.fixture
def pipeline(tmp_path) -> Path:
    """A fresh git + DVC repository holding the project's pipeline with tiny params, committed."""
    work = tmp_path / "repo"
    work.mkdir()
    for name in ("dvc.yaml", "params.yaml", ".dvcignore"):
        shutil.copy(REPO / name, work / name)
    shutil.copytree(REPO / "stages", work / "stages")
    shutil.copytree(REPO / "src", work / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    params = yaml.safe_load((work / "params.yaml").read_text())
    for section, values in TINY.items():
        params[section].update(values)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(work, "git", "init", "-q")
    run(work, "dvc", "init", "-q")
    run(work, "dvc", "config", "core.analytics", "false")
    run(work, "git", "add", "-A")
    run(work, "git", "commit", "-qm", "pipeline")
    return work


def run(cwd: Path, *cmd: str) -> str:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",  # stages run this python
        "GIT_AUTHOR_NAME": "test",
        "GIT_AUTHOR_EMAIL": "test@example.invalid",
        "GIT_COMMITTER_NAME": "test",
        "GIT_COMMITTER_EMAIL": "test@example.invalid",
        "DVC_SITE_CACHE_DIR": str(cwd.parent / "dvc-site-cache"),
        "DVC_NO_ANALYTICS": "1",
    }
    if cmd[0] == "dvc":
        cmd = (str(Path(sys.executable).parent / "dvc"), *cmd[1:])
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def locked_md5(work: Path, stage: str) -> str:
    lock = yaml.safe_load((work / "dvc.lock").read_text())
    return lock["stages"][stage]["outs"][0]["md5"]


def test_repro_then_an_extract_param_change_reruns_only_extract(pipeline):
    first = run(pipeline, "dvc", "repro")
    for stage in ("prepare", "extract", "neighbours", "represent@gcn-8", "represent@cheby-16", "hash@gcn-16",
                  "hash@cheby-8", "baselines@8", "evaluate"):  # fmt: skip
        assert f"Running stage '{stage}'" in first
    with h5py.File(pipeline / "data" / "features.h5", "r") as f:
        assert f["features"].shape == (40, 1280) and f.attrs["image_size"] == 32
    for name, bits in itertools.product(("gcn", "cheby"), (8, 16)):
        codes = read_codes(pipeline / "data" / "codes" / f"nrdh-{name}-{bits}.h5")
        assert codes.method == f"nrdh-{name}" and codes.bits == bits
        assert codes.database.shape == (30, bits // 8) and codes.query.shape == (10, bits // 8)
        assert (pipeline / "models" / f"nrdh-{name}-{bits}.pt").is_file()
        assert (pipeline / "metrics" / "hash" / f"{name}-{bits}.csv").is_file()
        assert (pipeline / "metrics" / "retrieval" / f"nrdh-{name}-{bits}.png").is_file()
    manifest_md5, features_md5 = locked_md5(pipeline, "prepare"), locked_md5(pipeline, "extract")

    unchanged = run(pipeline, "dvc", "repro")
    assert "Stage 'extract' didn't change, skipping" in unchanged
    assert "Running stage 'hash@gcn-8'" not in unchanged
    assert locked_md5(pipeline, "extract") == features_md5

    params = yaml.safe_load((pipeline / "params.yaml").read_text())
    params["extract"]["image_size"] = 48
    (pipeline / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    changed = run(pipeline, "dvc", "repro")
    assert "Running stage 'extract'" in changed and "Running stage 'hash@gcn-16'" in changed
    # prepare always looks at its data, but produced the same manifest, so only extract's output moved
    assert locked_md5(pipeline, "prepare") == manifest_md5
    assert locked_md5(pipeline, "extract") != features_md5
    with h5py.File(pipeline / "data" / "features.h5", "r") as f:
        assert f.attrs["image_size"] == 48


def test_a_hash_param_change_reruns_only_hash_and_evaluate_and_shows_in_metrics_diff(pipeline):
    run(pipeline, "dvc", "repro")
    metrics = json.loads((pipeline / "metrics" / "metrics.json").read_text())
    assert set(metrics) == {"nrdh-gcn", "nrdh-cheby", "lsh", "pcah", "itq", "sh", "cosine"}
    assert set(metrics["nrdh-gcn"]) == {"8", "16"} and "map@all" in metrics["nrdh-cheby"]["16"]
    assert "## Graph filters" in (pipeline / "metrics" / "results.md").read_text()
    run(pipeline, "git", "add", "-A")
    run(pipeline, "git", "commit", "-qm", "first run")

    params = yaml.safe_load((pipeline / "params.yaml").read_text())
    params["hash"]["omega"] = 0.5
    (pipeline / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    changed = run(pipeline, "dvc", "repro")
    assert "Running stage 'hash@gcn-8'" in changed and "Running stage 'hash@cheby-16'" in changed
    assert "Running stage 'evaluate'" in changed
    for stage in ("extract", "represent@gcn-8", "represent@cheby-16", "baselines@8", "baselines@16"):
        assert f"Stage '{stage}' didn't change, skipping" in changed
    diff = json.loads(run(pipeline, "dvc", "metrics", "diff", "--json"))["metrics/metrics.json"]
    assert any(key.startswith("nrdh-gcn.") for key in diff), diff
    assert not any(key.startswith(("itq.", "lsh.", "cosine.")) for key in diff), diff


def test_dvc_exp_run_sets_a_param_from_the_command_line(pipeline):
    run(pipeline, "dvc", "exp", "run", "-S", "extract.image_size=40")
    with h5py.File(pipeline / "data" / "features.h5", "r") as f:
        assert f.attrs["image_size"] == 40
    assert "extract.image_size" in run(pipeline, "dvc", "params", "diff")


def test_knn_configuration_as_an_experiment_reruns_only_represent_hash_and_evaluate(pipeline):
    """`dvc exp run -S` switches to kNN graphs and graph inputs: the features and neighbours are reused."""
    run(pipeline, "dvc", "repro")
    run(pipeline, "git", "add", "-A")
    run(pipeline, "git", "commit", "-qm", "first run")
    changed = run(pipeline, "dvc", "exp", "run", "-S", "represent.graph=knn", "-S", "hash.input=graph",
                  "-S", "hash.target=rotated")  # fmt: skip
    for stage in ("represent@gcn-8", "hash@cheby-16", "evaluate"):
        assert f"Running stage '{stage}'" in changed
    for stage in ("extract", "neighbours", "baselines@8"):
        assert f"Stage '{stage}' didn't change, skipping" in changed
    saved = json.loads((pipeline / "models" / "nrdh-gcn-8.json").read_text())
    assert saved["graph_input"] == {"rho": 0.4, "p": 0.3, "neighbours": 9}
    with h5py.File(pipeline / "data" / "neighbours.h5", "r") as f:
        assert f["indices"].shape == (40, 9) and f["indices"][()].max() < 30  # among the 30 training items


def test_adding_a_filter_runs_only_its_stages(pipeline):
    run(pipeline, "dvc", "repro")
    params = yaml.safe_load((pipeline / "params.yaml").read_text())
    params["represent"]["filters"] = ["gcn", "cheby", "none"]
    (pipeline / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    changed = run(pipeline, "dvc", "repro")
    assert "Running stage 'represent@none-8'" in changed and "Running stage 'hash@none-16'" in changed
    assert "Stage 'represent@gcn-8' didn't change, skipping" in changed
    assert "Stage 'hash@cheby-16' didn't change, skipping" in changed
    assert "nrdh-none" in json.loads((pipeline / "metrics" / "metrics.json").read_text())


def test_plot_columns_match_the_methods_the_params_produce():
    """dvc.yaml's plots name one column per method; a name missing from the CSVs would break the plot."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    methods = sorted(["lsh", "pcah", "itq", "sh", *(f"nrdh-{f}" for f in params["represent"]["filters"])])
    for plot in yaml.safe_load((REPO / "dvc.yaml").read_text())["plots"]:
        (definition,) = plot.values()
        assert definition["y"] == methods
