"""The ``graphhash`` command: ``preset`` rewrites params.yaml from the schema; ``encode`` fails in one line."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import REPO

from graphhash.cli import main
from graphhash.files.codes import pack
from graphhash.files.features import write_features
from graphhash.files.models import save_model
from graphhash.nrdh.encoder import HASH_MODELS
from graphhash.nrdh.hashnet import HashNet
from graphhash.params.all import defaults

GRAPHHASH = str(Path(sys.executable).parent / "graphhash")  # the console script of this environment


# ---------------------------------------------------------------- preset


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """A folder with copies of the repository's params.yaml and presets/, as the working directory."""
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    shutil.copytree(REPO / "presets", tmp_path / "presets")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def applied(base: dict, changes: dict) -> dict:
    """``base`` with the nested ``changes`` set key by key (written here, not the library's merge)."""
    out = copy.deepcopy(base)
    for key, value in changes.items():
        out[key] = applied(out[key], value) if isinstance(value, dict) else value
    return out


def read_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def test_preset_applies_its_values_and_keeps_the_data_sections(project, capsys):
    """The data sections (prepare, extract) keep their values; every other key is the default or the preset's."""
    params = read_yaml(project / "params.yaml")
    params["prepare"].update(limit_per_class=4, query_size=1)
    params["extract"]["image_size"] = 32
    params["hash"]["mu"] = 0.1  # not a data section: reset to the default by the preset
    (project / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")

    main(["preset", "paper"])
    written = read_yaml(project / "params.yaml")
    paper = read_yaml(REPO / "presets" / "paper.yaml")
    expected = applied(defaults(), paper)
    expected["prepare"], expected["extract"] = params["prepare"], params["extract"]
    assert written == expected
    assert written["codes"]["filters"] == ["gcn", "none"] and written["represent"]["gcn"]["p"] == 0.8
    assert written["hash"]["mu"] == defaults()["hash"]["mu"]
    text = (project / "params.yaml").read_text(encoding="utf-8")
    assert text.startswith("# Presets applied: paper.\n# graphhash pipeline parameters")
    assert "  steps: 3140  # Adam steps, whatever the dataset's size" in text  # written with the schema's comments
    # the command lists what differs from the defaults, as the keys dvc exp run -S takes
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("params.yaml: paper applied; ")
    for line in ('  graph.kind: "batch"', "  represent.gcn.p: 0.8", "  prepare.limit_per_class: 4"):
        assert line in out
    assert not any(line.startswith("  hash.mu") for line in out)


def test_presets_apply_in_order(project):
    main(["preset", "paper", "filters"])
    written = read_yaml(project / "params.yaml")
    filters = read_yaml(REPO / "presets" / "filters.yaml")
    assert written == applied(applied(defaults(), read_yaml(REPO / "presets" / "paper.yaml")), filters)
    assert written["codes"]["filters"] == filters["codes"]["filters"] and written["graph"]["kind"] == "batch"


def test_preset_default_restores_the_defaults_exactly(project):
    original = (REPO / "params.yaml").read_text(encoding="utf-8")
    main(["preset", "paper"])
    assert read_yaml(project / "params.yaml") != defaults()
    main(["preset", "default"])
    assert (project / "params.yaml").read_text(encoding="utf-8") == original
    assert read_yaml(project / "params.yaml") == defaults()


def test_unknown_preset_is_one_line_listing_the_presets(project, capsys):
    before = (project / "params.yaml").read_bytes()
    with pytest.raises(SystemExit) as info:
        main(["preset", "papr"])
    assert info.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and "'papr'" in errors[0]
    assert "(presets: default, cnn, crossmodal, filters, paper, peers)" in errors[0]
    assert (project / "params.yaml").read_bytes() == before


def test_a_preset_with_an_unknown_key_names_the_preset_file(project, capsys):
    (project / "presets" / "bad.yaml").write_text("hash:\n  stpes: 3\n", encoding="utf-8")
    before = (project / "params.yaml").read_bytes()
    with pytest.raises(SystemExit) as info:
        main(["preset", "bad"])
    assert info.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {project / 'presets' / 'bad.yaml'}: hash.stpes: unknown key (did you mean 'steps'?)"]
    assert (project / "params.yaml").read_bytes() == before


# ---------------------------------------------------------------- encode


@pytest.fixture
def model(tmp_path) -> tuple[Path, HashNet]:
    """A saved hash network for 12-d features, 16 bits (random weights, eval mode)."""
    torch.manual_seed(0)
    network = HashNet(12, 16, negative_slope=0.2, dropout=0.0, hidden=(8, 6)).eval()
    folder = tmp_path / "models" / "nrdh-gcn-16"
    save_model(folder, network, HASH_MODELS["mlp"], {"in_dim": 12, "bits": 16, "hidden": [8, 6], "negative_slope": 0.2,
                                               "dropout": 0.0, "modality": "image", "training": {}, "backbone": "test",
                                               "graph_input": None})  # fmt: skip
    return folder, network


def features_file(path: Path, x: np.ndarray) -> Path:
    n = len(x)
    query = np.arange(n) < 3
    write_features(path, [{"image": x.astype(np.float32)}], dims={"image": x.shape[1]},
                   ids=[f"x/{i}" for i in range(n)], labels=np.zeros(n, dtype=np.int64),
                   masks={"query": query, "database": ~query, "train": ~query}, attrs={})  # fmt: skip
    return path


def graphhash(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([GRAPHHASH, *args], capture_output=True, text=True, timeout=300)


def test_encode_writes_the_packed_codes_of_every_row(model, tmp_path):
    folder, network = model
    x = np.random.default_rng(0).normal(size=(10, 12))
    done = graphhash("encode", str(folder), str(features_file(tmp_path / "f.h5", x)), str(tmp_path / "codes.npy"))
    assert done.returncode == 0, done.stderr
    with torch.no_grad():
        bits = (network(torch.from_numpy(x.astype(np.float32))) >= 0).numpy()
    np.testing.assert_array_equal(np.load(tmp_path / "codes.npy"), pack(bits))


def error_lines(done: subprocess.CompletedProcess) -> list[str]:
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if not line.startswith("graphhash.")]  # log lines
    assert lines and all(line.startswith("error:") for line in lines), done.stderr
    assert "Traceback" not in done.stderr
    return lines


def test_encode_features_of_another_dimension_is_one_line_naming_both(model, tmp_path):
    folder, _ = model
    features = features_file(tmp_path / "f.h5", np.ones((6, 5)))
    lines = error_lines(graphhash("encode", str(folder), str(features), str(tmp_path / "codes.npy")))
    assert len(lines) == 1
    assert "5 dimensions" in lines[0] and "takes 12" in lines[0] and str(features) in lines[0]
    assert not (tmp_path / "codes.npy").exists()


def test_encode_with_a_model_of_a_modality_the_file_lacks_is_one_line(model, tmp_path):
    """A text hash network given an image-only features file: one line naming the file and what it holds."""
    folder, _ = model
    config = json.loads((folder / "model.json").read_text())
    (folder / "model.json").write_text(json.dumps({**config, "modality": "text"}))
    features = features_file(tmp_path / "f.h5", np.ones((6, 12)))
    lines = error_lines(graphhash("encode", str(folder), str(features), str(tmp_path / "codes.npy")))
    assert lines == [f"error: {features}: no features of modality 'text' (it holds image); rerun the extract stage"]
    assert not (tmp_path / "codes.npy").exists()


def test_encode_to_an_existing_folder_is_one_line(model, tmp_path):
    folder, _ = model
    features = features_file(tmp_path / "f.h5", np.ones((6, 12)))
    (tmp_path / "out").mkdir()
    lines = error_lines(graphhash("encode", str(folder), str(features), str(tmp_path / "out")))
    assert lines == [f"error: {tmp_path / 'out'}: is a folder; give the path of a file to write"]
    assert list((tmp_path / "out").iterdir()) == []


def test_encode_refuses_features_holding_a_nan_naming_the_file_and_row(model, tmp_path):
    """One NaN in row 4 would spread through the network into codes of all zeros (issue 30, 2)."""
    folder, _ = model
    x = np.random.default_rng(0).normal(size=(10, 12))
    x[4, 7], x[8, 0] = np.nan, np.inf
    features = features_file(tmp_path / "nan.h5", x)
    lines = error_lines(graphhash("encode", str(folder), str(features), str(tmp_path / "codes.npy")))
    assert lines == [f"error: {features}: NaN or infinite features in 2 rows, the first row 4"]
    assert not (tmp_path / "codes.npy").exists()
