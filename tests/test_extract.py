"""The extract stage: the HDF5 schema, values against an independent computation, bad items, resuming."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from graphhash import extract as extract_module
from graphhash.backbones import load_backbone
from graphhash.errors import GraphhashError
from graphhash.extract import extract, resolve_device, resolve_workers
from graphhash.features import read_features
from graphhash.manifest import Manifest
from graphhash.prepare import prepare


def prepare_params(**overrides) -> SimpleNamespace:
    values = dict(
        source="digits",
        path="",
        seed=0,
        split="auto",
        query_size=2,
        train="database",
        train_size=0.5,
        limit_per_class=6,
    )
    return SimpleNamespace(**{**values, **overrides})


def extract_params(**overrides) -> SimpleNamespace:
    values = dict(
        backbone="efficientnet_lite0",
        weights="none",
        weights_path="",
        image_size=32,
        batch_size=8,
        num_workers=0,
        device="cpu",
        on_bad_image="fail",
    )
    return SimpleNamespace(**{**values, **overrides})


def image_folder(root: Path, bad: dict[str, bytes] | None = None) -> Path:
    """Two classes of three small random images each, plus optional bad files {relative path: bytes}."""
    rng = np.random.default_rng(0)
    for cls in ("cats", "dogs"):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(root / cls / f"{i}.png")
    for rel, data in (bad or {}).items():
        (root / rel).write_bytes(data)
    return root


def test_features_file_schema_and_values_match_an_independent_forward(tmp_path):
    """Every dataset and attribute is there, and rows equal the backbone run by hand on the same images."""
    manifest = prepare(prepare_params())
    dest = tmp_path / "features.h5"
    extract(manifest, extract_params(), dest)

    with h5py.File(dest, "r") as f:
        assert f["features"].dtype == np.float32 and f["features"].shape == (len(manifest), 1280)
        assert f["labels"].dtype == np.int64
        assert {"ids", "query", "database", "train"} <= set(f)
        for key in ("backbone", "weights", "image_size", "dim", "count", "classes", "skipped_ids", "versions"):
            assert key in f.attrs
        assert f.attrs["count"] == len(manifest) and f.attrs["dim"] == 1280
    fs = read_features(dest)
    assert fs.ids == manifest.ids
    np.testing.assert_array_equal(fs.labels, manifest.labels)
    for name in ("query", "database", "train"):
        np.testing.assert_array_equal(getattr(fs, name), getattr(manifest.split, name))

    # Reference: digits drawn as dark ink on white, bicubic resize, (x - 127) / 128, the model by hand.
    from sklearn.datasets import load_digits

    images = load_digits().images
    backbone = load_backbone("efficientnet_lite0", "none", "", 32)
    rows = [0, 7, len(manifest) - 1]
    batch = []
    for r in rows:
        grey = np.round(255 * (1 - images[int(manifest.ids[r].split("/")[1])] / 16)).astype(np.uint8)
        rgb = Image.fromarray(grey).convert("RGB").resize((32, 32), Image.Resampling.BICUBIC)
        batch.append((np.asarray(rgb, dtype=np.float32) - 127.0) / 128.0)
    with torch.no_grad():
        expected = backbone.model(torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2)).numpy()
    np.testing.assert_allclose(fs.features[rows], expected, rtol=1e-4, atol=1e-4)


def test_npy_vectors_become_the_features(tmp_path):
    rng = np.random.default_rng(1)
    vectors = {}
    for cls in ("a", "b"):
        (tmp_path / "vec" / cls).mkdir(parents=True)
        for i in range(5):
            v = rng.normal(size=7).astype(np.float64)
            np.save(tmp_path / "vec" / cls / f"{i}.npy", v if i % 2 else v[None, :])
            vectors[f"{cls}/{i}.npy"] = v
    manifest = prepare(prepare_params(source="npy", path=str(tmp_path / "vec"), query_size=1, limit_per_class=0))
    extract(manifest, extract_params(batch_size=3), tmp_path / "f.h5")
    fs = read_features(tmp_path / "f.h5")
    np.testing.assert_array_equal(fs.features, np.stack([vectors[i] for i in fs.ids]).astype(np.float32))


@pytest.mark.parametrize("bad", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40])
def test_bad_image_fails_naming_the_file_and_leaves_no_output(tmp_path, bad):
    folder = image_folder(tmp_path / "imgs", {"dogs/broken.png": bad})
    manifest = prepare(prepare_params(source="folder", path=str(folder), query_size=1, limit_per_class=0))
    out = tmp_path / "out"
    with pytest.raises(GraphhashError, match=r"dogs/broken\.png.*on_bad_image"):
        extract(manifest, extract_params(), out / "features.h5")
    assert not (out / "features.h5").exists()
    assert not [p for p in out.glob("*") if not p.name.endswith(".resume")], "no temporary file left behind"


def test_skip_mode_leaves_the_bad_image_out_and_records_it(tmp_path):
    folder = image_folder(tmp_path / "imgs", {"dogs/broken.jpg": b"\xff\xd8\xff\xe0 truncated jpeg"})
    manifest = prepare(prepare_params(source="folder", path=str(folder), query_size=1, limit_per_class=0))
    extract(manifest, extract_params(on_bad_image="skip"), tmp_path / "f.h5")
    fs = read_features(tmp_path / "f.h5")
    assert "dogs/broken.jpg" not in fs.ids and len(fs.ids) == len(manifest) - 1
    assert fs.attrs["skipped_ids"] == '["dogs/broken.jpg"]'
    keep = [manifest.ids.index(i) for i in fs.ids]
    np.testing.assert_array_equal(fs.labels, manifest.labels[keep])
    np.testing.assert_array_equal(fs.database, manifest.split.database[keep])


def test_interrupted_run_resumes_and_gives_the_same_file(tmp_path, monkeypatch):
    """An exception after three batches, then a rerun: only the missing batches run, the bytes match."""
    manifest = prepare(prepare_params(limit_per_class=5))  # 50 items: 7 batches of 8
    params = extract_params()
    extract(manifest, params, tmp_path / "clean" / "features.h5")

    calls = {"n": 0}
    real_call = extract_module.Encoder.__call__

    def failing_call(self, batch):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt  # what Ctrl-C raises
        return real_call(self, batch)

    monkeypatch.setattr(extract_module.Encoder, "__call__", failing_call)
    dest = tmp_path / "resumed" / "features.h5"
    with pytest.raises(KeyboardInterrupt):
        extract(manifest, params, dest)
    assert not dest.exists()

    calls["n"] = -100  # no more failures; count the batches the resumed run computes
    extract(manifest, params, dest)
    assert calls["n"] == -100 + 7 - 3
    assert dest.read_bytes() == (tmp_path / "clean" / "features.h5").read_bytes()
    assert not list(dest.parent.glob(".*")), "resume folder and temporary files are gone"


def test_killed_stage_resumes_from_saved_chunks(tmp_path):
    """SIGKILL the real stage script mid-way; the rerun resumes and matches an uninterrupted run."""
    repo = Path(__file__).resolve().parents[1]
    work = tmp_path / "work"
    (work / "data").mkdir(parents=True)
    (work / "params.yaml").write_text(
        "extract:\n  backbone: efficientnet_lite0\n  weights: none\n  weights_path: ''\n  image_size: 48\n"
        "  batch_size: 8\n  num_workers: 1\n  device: cpu\n  on_bad_image: fail\n"
    )
    prepare(prepare_params(limit_per_class=20)).save(work / "data" / "manifest.json")  # 200 items, 25 batches
    cmd = [sys.executable, str(repo / "stages" / "extract.py")]
    proc = subprocess.Popen(cmd, cwd=work, stderr=subprocess.PIPE, text=True)
    resume = work / "data" / ".features.h5.resume"
    deadline = time.monotonic() + 120
    while len(list(resume.glob("*/rows-*.npz"))) < 3 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(list(resume.glob("*/rows-*.npz")))
    assert 3 <= done_before < 25, "the kill must land mid-way"
    assert not (work / "data" / "features.h5").exists()

    rerun = subprocess.run(cmd, cwd=work, capture_output=True, text=True, check=True)
    assert f"resuming: {done_before} of 25 batches already done" in rerun.stderr
    clean = work / "clean.h5"
    extract(Manifest.load(work / "data" / "manifest.json"), extract_params(image_size=48), clean)
    np.testing.assert_array_equal(read_features(work / "data" / "features.h5").features, read_features(clean).features)


def test_changed_params_do_not_reuse_old_chunks(tmp_path, monkeypatch):
    """Chunks of a run with another image size are discarded, not mixed into the new file."""
    manifest = prepare(prepare_params(limit_per_class=3))
    dest = tmp_path / "features.h5"
    monkeypatch.setattr(extract_module.ChunkStore, "remove", lambda self: None)  # keep chunks as if interrupted
    extract(manifest, extract_params(image_size=32), dest)
    monkeypatch.undo()
    extract(manifest, extract_params(image_size=40), dest)
    reference = tmp_path / "reference.h5"
    extract(manifest, extract_params(image_size=40), reference)
    np.testing.assert_array_equal(read_features(dest).features, read_features(reference).features)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_requested_without_a_gpu_is_a_clear_error():
    with pytest.raises(GraphhashError, match=r"extract\.device"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"


def test_progress_lines_when_not_on_a_terminal(tmp_path, caplog):
    caplog.set_level("INFO")
    extract(prepare(prepare_params(query_size=1, limit_per_class=2)), extract_params(), tmp_path / "f.h5")
    assert any("extract: 20/20 items (100%)" in r.getMessage() for r in caplog.records)


def test_stage_script_reports_bad_params_one_line_each(tmp_path):
    repo = Path(__file__).resolve().parents[1]
    (tmp_path / "params.yaml").write_text(
        "extract:\n  backbnoe: vit_b_16\n  weights: none\n  weights_path: ''\n  image_size: 8\n"
        "  batch_size: 8\n  num_workers: 0\n  device: tpu\n  on_bad_image: fail\n"
    )
    run = subprocess.run(
        [sys.executable, str(repo / "stages" / "extract.py")], cwd=tmp_path, capture_output=True, text=True
    )
    assert run.returncode == 2
    errors = [line for line in run.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 4, run.stderr  # misspelled key, the key it lacks, image_size, device
    assert any("extract.backbnoe: unknown key (did you mean 'backbone'?)" in e for e in errors)
    assert any("extract.backbone: missing key" in e for e in errors)
    assert any("extract.image_size" in e for e in errors) and any("extract.device" in e for e in errors)
    assert "Traceback" not in run.stderr
    assert os.listdir(tmp_path) == ["params.yaml"]


def test_auto_workers_none_on_cpu_some_on_cuda():
    assert resolve_workers("auto", torch.device("cpu")) == 0
    assert 1 <= resolve_workers("auto", torch.device("cuda")) <= 8
    assert resolve_workers(3, torch.device("cpu")) == 3
