"""End to end: the repository's own dvc.yaml in a temporary git repo, driven by the real dvc command.

One module-scoped repository is built and reproduced once (tiny params); each test works on its own copy.
"""

from __future__ import annotations

import csv
import itertools
import json
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import pytest
import yaml
from conftest import PIPELINE_FILES, dvc_env

from graphhash.files.codes import read_codes
from graphhash.params.all import check, render

REPO = Path(__file__).resolve().parents[1]
FILTERS, BITS = ["gcn", "cheby"], [8, 16]
BASELINES = ["lsh", "pcah", "itq", "sh"]
METHODS = sorted([*BASELINES, *(f"nrdh-{name}" for name in FILTERS)])
# The paper's graphs (random batches, plain features as the hash network's input), so that the kNN
# configuration can be tried as an experiment.
TINY = {
    "prepare": {"limit_per_class": 4, "query_size": 1},
    "extract": {"image_size": 32, "batch_size": 16},
    "codes": {"bits": BITS, "filters": FILTERS},
    "graph": {"kind": "batch"},
    "represent": {"steps": 3, "graphs_per_step": 4, "latent": 0},
    "hash": {"steps": 3, "batch_size": 8, "input": "features", "target": "representation"},
    "baselines": {"itq": {"iterations": 5}},
    "evaluate": {"map_at": [10], "figure_queries": 2, "neighbours": 5},
}
CURVES = ("pr_rank", "precision_radius", "recall_radius")


def run(cwd: Path, *cmd: str, check_status: bool = True) -> str:
    env = dvc_env(cwd)
    if cmd[0] == "dvc":
        cmd = (str(Path(sys.executable).parent / "dvc"), *cmd[1:])
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if check_status:
        assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def read_params(work: Path) -> dict:
    return yaml.safe_load((work / "params.yaml").read_text(encoding="utf-8"))


def set_params(work: Path, changes: dict) -> None:
    """Merge ``changes`` ({section: {key: value}}, sub-sections nested) into params.yaml, written from the schema."""

    def merge(base: dict, new: dict) -> dict:
        return {**base, **{k: merge(base[k], v) if isinstance(v, dict) else v for k, v in new.items()}}

    (work / "params.yaml").write_text(render(check(merge(read_params(work), changes))), encoding="utf-8")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, str]:
    """A git + DVC repository holding the project's pipeline with tiny params, reproduced and committed once;
    with the output of that first ``dvc repro``."""
    work = tmp_path_factory.mktemp("built") / "repo"
    work.mkdir()
    run(work, "git", "init", "-q")
    run(work, "dvc", "init", "-q")
    run(work, "dvc", "config", "core.analytics", "false")
    for name in ("params.yaml", *PIPELINE_FILES):
        (work / name).parent.mkdir(exist_ok=True)
        shutil.copy(REPO / name, work / name)
    for name in ("stages", "src", "presets"):
        shutil.copytree(REPO / name, work / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copytree(REPO / ".dvc" / "plots", work / ".dvc" / "plots")
    set_params(work, TINY)
    run(work, "git", "add", "-A")
    run(work, "git", "commit", "-qm", "pipeline")
    first = run(work, "dvc", "repro")
    run(work, "git", "add", "-A")
    run(work, "git", "commit", "-qm", "first run")
    return work, first


@pytest.fixture
def pipeline(built, tmp_path) -> Path:
    """A copy of the reproduced repository, for one test to change."""
    work = tmp_path / "repo"
    shutil.copytree(built[0], work, symlinks=True)
    return work


def locked_md5(work: Path, stage: str) -> str:
    lock = yaml.safe_load((work / "dvc.lock").read_text())
    return lock["stages"][stage]["outs"][0]["md5"]


def stages_of(bits=BITS, filters=FILTERS) -> list[str]:
    matrix = [f"{stage}@{f}" for stage in ("represent", "hash") for f in filters]
    return ["prepare", "extract", "neighbours", *matrix, *(f"baselines@{b}" for b in bits), "evaluate"]


def ran(output: str, stage: str) -> bool:
    return f"Running stage '{stage}'" in output


def skipped(output: str, stage: str) -> bool:
    return f"Stage '{stage}' didn't change, skipping" in output


def test_first_repro_runs_every_stage_and_writes_every_output(built):
    work, first = built
    for stage in stages_of():
        assert ran(first, stage), stage
    with h5py.File(work / "data" / "features.h5", "r") as f:
        assert f["features/image"].shape == (40, 1280) and f.attrs["image_size"] == 32
    for name, bits in itertools.product(FILTERS, BITS):
        codes = read_codes(work / "data" / "codes" / f"nrdh-{name}" / f"nrdh-{name}-{bits}-image.h5")
        assert codes.method == f"nrdh-{name}" and codes.bits == bits and codes.modality == "image"
        assert codes.database.shape == (30, bits // 8) and codes.query.shape == (10, bits // 8)
        for model in (
            work / "models" / f"nrdh-{name}" / str(bits) / "image",
            work / "models" / f"gcnae-{name}" / str(bits),
        ):
            assert sorted(p.name for p in model.iterdir()) == ["model.json", "model.pt"]
        assert (work / "data" / "representations" / name / f"{bits}.h5").is_file()
        losses = work / "metrics" / "losses"
        for path in (losses / f"represent-{name}" / f"{bits}.csv", losses / f"hash-{name}" / f"{bits}-image.csv"):
            with open(path, newline="") as f:
                rows = list(csv.DictReader(f))
            assert [int(row["step"]) for row in rows][-1] == 3  # x = Adam step, up to the steps asked for
        assert (work / "metrics" / "retrieval" / f"nrdh-{name}-{bits}.png").is_file()
    for bits in BITS:
        folder = work / "data" / "codes" / f"baselines-{bits}"
        assert sorted(p.name for p in folder.iterdir()) == sorted(f"{m}-{bits}-image.h5" for m in BASELINES)
        assert read_codes(folder / f"itq-{bits}-image.h5").method == "itq"
    metrics = json.loads((work / "metrics" / "metrics.json").read_text())
    assert set(metrics) == {*METHODS, "cosine"}
    assert all(set(metrics[m]) == {"8", "16"} for m in METHODS) and "map@10" in metrics["nrdh-cheby"]["16"]
    assert "## Graph filters" in (work / "metrics" / "results.md").read_text()
    assert json.loads(run(work, "dvc", "status", "--json")) == {"prepare": ["always changed"]}


def test_an_extract_param_change_as_an_experiment_reruns_extract_and_what_depends_on_its_output(pipeline):
    """Nothing changed, nothing reruns but prepare (always_changed); `dvc exp run -S` sets keys, nested ones
    too, without editing params.yaml, and the manifest stays the same while the features change."""
    manifest_md5, features_md5 = locked_md5(pipeline, "prepare"), locked_md5(pipeline, "extract")
    unchanged = run(pipeline, "dvc", "repro")
    assert ran(unchanged, "prepare")
    for stage in stages_of()[1:]:
        assert skipped(unchanged, stage), stage
    assert locked_md5(pipeline, "extract") == features_md5

    changed = run(pipeline, "dvc", "exp", "run", "-S", "extract.image_size=48", "-S", "represent.gcn.p=0.5")
    for stage in stages_of():
        assert ran(changed, stage), stage
    # prepare always looks at its data, but produced the same manifest, so only extract's output moved
    assert locked_md5(pipeline, "prepare") == manifest_md5
    assert locked_md5(pipeline, "extract") != features_md5
    with h5py.File(pipeline / "data" / "features.h5", "r") as f:
        assert f.attrs["image_size"] == 48
    saved = json.loads((pipeline / "models" / "gcnae-gcn" / "8" / "model.json").read_text())
    assert saved["represent"]["gcn"]["p"] == 0.5
    diff = run(pipeline, "dvc", "params", "diff")
    assert "extract.image_size" in diff and "represent.gcn.p" in diff


def test_a_hash_param_change_reruns_only_hash_and_evaluate_and_shows_in_metrics_diff(pipeline):
    set_params(pipeline, {"hash": {"seed": 1}})
    changed = run(pipeline, "dvc", "repro")
    for stage in [s for s in stages_of() if s.startswith("hash@")] + ["evaluate"]:
        assert ran(changed, stage), stage
    for stage in ["extract", "neighbours", *(s for s in stages_of() if s.startswith(("represent@", "baselines@")))]:
        assert skipped(changed, stage), stage
    full = run(pipeline, "dvc", "metrics", "diff", "--json", "--targets", "metrics/metrics.json")
    diff = json.loads(full)["metrics/metrics.json"]
    assert any(key.startswith(("nrdh-gcn.", "nrdh-cheby.")) for key in diff), diff
    assert any(".nmap@10" in key or ".recall@10" in key for key in diff), diff
    assert not any(key.startswith(("itq.", "lsh.", "pcah.", "sh.", "cosine.")) for key in diff), diff
    # the compact summary, DVC's metric: the first filter's NRDH codes at each code length
    summary = json.loads(run(pipeline, "dvc", "metrics", "diff", "--json"))["metrics/summary.json"]
    assert set(summary) <= {"map@10.8", "map@10.16", "nmap@10.8", "nmap@10.16"} and summary, summary
    metrics = json.loads((pipeline / "metrics" / "metrics.json").read_text())
    assert json.loads((pipeline / "metrics" / "summary.json").read_text()) == {
        key: {bits: metrics["nrdh-gcn"][bits][key] for bits in ("8", "16")}
        for key in ("map@10", "nmap@10")}  # fmt: skip


def test_knn_configuration_as_an_experiment_reruns_only_the_graph_stages(pipeline):
    """`dvc exp run -S` switches to kNN graphs and graph inputs: the features are reused, and the neighbours
    (which track the graph section) come out the same."""
    neighbours_md5 = locked_md5(pipeline, "neighbours")
    changed = run(pipeline, "dvc", "exp", "run", "-S", "graph.kind=knn", "-S", "hash.input=graph",
                  "-S", "hash.target=rotated")  # fmt: skip
    for stage in ("neighbours", "represent@gcn", "hash@cheby", "evaluate"):
        assert ran(changed, stage), stage
    for stage in ("extract", "baselines@8", "baselines@16"):
        assert skipped(changed, stage), stage
    assert locked_md5(pipeline, "neighbours") == neighbours_md5
    saved = json.loads((pipeline / "models" / "nrdh-gcn" / "8" / "image" / "model.json").read_text())
    assert saved["graph_input"] == {"rho": 0.4, "p": 0.3, "neighbours": 9}
    assert json.loads((pipeline / "models" / "gcnae-gcn" / "8" / "model.json").read_text())["graph"]["kind"] == "knn"
    with h5py.File(pipeline / "data" / "neighbours.h5", "r") as f:
        assert f["indices"].shape == (40, 9) and f["indices"][()].max() < 30  # among the 30 training items


def test_adding_a_filter_runs_only_its_stages(pipeline):
    set_params(pipeline, {"codes": {"filters": [*FILTERS, "none"]}})
    changed = run(pipeline, "dvc", "repro")
    for stage in ("represent@none", "hash@none", "evaluate"):
        assert ran(changed, stage), stage
    for stage in [s for s in stages_of() if s not in ("prepare", "evaluate")]:
        assert skipped(changed, stage), stage
    metrics = json.loads((pipeline / "metrics" / "metrics.json").read_text())
    assert set(metrics) == {*METHODS, "nrdh-none", "cosine"}


def stage_status(work: Path) -> dict:
    """``dvc status --json`` without prepare, which always reports itself changed (always_changed)."""
    status = json.loads(run(work, "dvc", "status", "--json"))
    return {stage: changes for stage, changes in status.items() if stage != "prepare"}


def test_a_stale_temporary_file_in_the_codes_folder_does_not_change_evaluate(pipeline):
    """A run killed during an atomic write leaves ``.<name>.<random>.tmp`` beside its output; the codes folder
    is a dependency of evaluate, and the leftover must not make it look changed; a real new file does."""
    codes = pipeline / "data" / "codes"
    assert stage_status(pipeline) == {}
    (codes / "nrdh-gcn" / ".nrdh-gcn-8-image.h5.abc.tmp").write_bytes(b"partial")
    (codes / ".stray.h5.abc.tmp").write_bytes(b"partial")
    (codes / "baselines-8" / ".itq-8.h5.x1y2.tmp").write_bytes(b"partial")
    assert stage_status(pipeline) == {}
    shutil.copy(codes / "nrdh-gcn" / "nrdh-gcn-8-image.h5", codes / "copy.h5")
    status = stage_status(pipeline)
    assert list(status) == ["evaluate"], status
    assert {"changed deps": {"data/codes": "modified"}} in status["evaluate"], status


def test_dvc_plots_show_renders_every_method_in_the_curve_plots(built):
    shown = json.loads(run(built[0], "dvc", "plots", "show", "--json"))["data"]
    titles = {next(iter(plot)).removeprefix("${paths.curves}/"): next(iter(plot.values()))["title"]
              for plot in yaml.safe_load((REPO / "dvc.yaml").read_text())["plots"]}  # fmt: skip
    curves = {key: value for key, value in shown.items() if key.startswith("metrics/curves/")}
    assert sorted(curves) == sorted(f"metrics/curves/{curve}/{bits}.csv" for curve in CURVES for bits in BITS)
    for key, renders in curves.items():
        curve, bits = key.split("/")[2], int(key.split("/")[3].removesuffix(".csv"))
        (render_,) = renders
        spec = render_["content"]
        assert spec["title"] == titles[curve]
        assert spec["encoding"]["color"]["field"] == "method"  # the by_method template
        rows = spec["data"]["values"]
        assert sorted({row["method"] for row in rows}) == METHODS, key
        x, y = {"pr_rank": ("recall", "precision"), "precision_radius": ("radius", "precision"),
                "recall_radius": ("radius", "recall")}[curve]  # fmt: skip
        assert spec["encoding"]["x"]["field"] == x and spec["encoding"]["y"]["field"] == y
        per_method = 20 if curve == "pr_rank" else bits + 1
        for method in METHODS:
            assert sum(row["method"] == method for row in rows) == per_method, (key, method)
        assert all(0.0 <= float(row[y]) <= 1.0 for row in rows)
