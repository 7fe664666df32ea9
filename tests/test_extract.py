"""The extract stage: the HDF5 schema, values against an independent computation, bad items, resuming."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from graphhash.backbones import load_backbone
from graphhash.errors import GraphhashError
from graphhash.files.features import read_features
from graphhash.files.manifest import Manifest
from graphhash.files.resume import Resume
from graphhash.params.extract import ExtractParams
from graphhash.params.prepare import PrepareParams
from graphhash.pipeline import extract as extract_module
from graphhash.pipeline.extract import extract
from graphhash.pipeline.prepare import prepare
from graphhash.runtime import resolve_device, resolve_workers


def prepare_params(**overrides) -> PrepareParams:
    """Digits, 6 items per class, 2 queries per class; other keys take their defaults."""
    return PrepareParams(**({"source": "digits", "query_size": 2, "limit_per_class": 6} | overrides))


def extract_params(**overrides) -> ExtractParams:
    """EfficientNet-Lite0 with random weights on 32x32 images, on the CPU in the main process."""
    values = {"weights": "none", "image_size": 32, "batch_size": 8, "num_workers": 0, "device": "cpu"}
    return ExtractParams(**(values | overrides))


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
        assert list(f["features"]) == ["image"]  # one dataset per modality
        assert f["features/image"].dtype == np.float32 and f["features/image"].shape == (len(manifest), 1280)
        assert f["labels"].dtype == np.int64
        assert {"ids", "query", "database", "train"} <= set(f)
        for key in ("backbone", "weights", "image_size", "modalities", "dims", "count", "classes", "skipped_ids",
                    "versions"):  # fmt: skip
            assert key in f.attrs
        assert f.attrs["count"] == len(manifest) and json.loads(f.attrs["dims"]) == {"image": 1280}
        assert json.loads(f.attrs["modalities"]) == ["image"]
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
    real_embedder = extract_module.embedder

    def failing_embedder(backbone, device):
        embed = real_embedder(backbone, device)

        def failing(batch):
            calls["n"] += 1
            if calls["n"] == 4:
                raise KeyboardInterrupt  # what Ctrl-C raises
            return embed(batch)

        return failing

    monkeypatch.setattr(extract_module, "embedder", failing_embedder)
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
    cmd = [sys.executable, str(repo / "stages" / "extract.py"), "--manifest", "data/manifest.json"]
    cmd += ["--features", "data/features.h5"]
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
    monkeypatch.setattr(Resume, "remove", lambda self: None)  # keep chunks as if interrupted
    extract(manifest, extract_params(image_size=32), dest)
    monkeypatch.undo()
    extract(manifest, extract_params(image_size=40), dest)
    reference = tmp_path / "reference.h5"
    extract(manifest, extract_params(image_size=40), reference)
    np.testing.assert_array_equal(read_features(dest).features, read_features(reference).features)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_requested_without_a_gpu_is_a_clear_error():
    with pytest.raises(GraphhashError, match=r"extract\.device"):
        resolve_device("cuda", "extract.device")
    assert resolve_device("auto", "extract.device").type == "cpu"


def test_progress_lines_when_not_on_a_terminal(tmp_path, caplog):
    caplog.set_level("INFO")
    extract(prepare(prepare_params(query_size=1, limit_per_class=2)), extract_params(), tmp_path / "f.h5")
    assert any("extract: 20/20 items (100%)" in r.getMessage() for r in caplog.records)


def test_stage_script_reports_bad_params_one_line_each(tmp_path):
    """Every bad key of the extract section is one error line naming it; keys left out take their defaults."""
    repo = Path(__file__).resolve().parents[1]
    (tmp_path / "params.yaml").write_text(
        "extract:\n  backbnoe: vit_b_16\n  weights: none\n  weights_path: ''\n  image_size: 8\n"
        "  batch_size: 8\n  num_workers: 0\n  device: tpu\n  on_bad_image: fail\n"
    )
    run = subprocess.run(
        [sys.executable, str(repo / "stages" / "extract.py"), "--manifest", "m.json", "--features", "f.h5"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2
    errors = [line for line in run.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 3, run.stderr  # misspelled key, image_size, device (backbone takes its default)
    assert any("extract.backbnoe: unknown key (did you mean 'backbone'?)" in e for e in errors)
    assert any("extract.image_size" in e for e in errors) and any("extract.device" in e for e in errors)
    assert not any("extract.backbone:" in e for e in errors)
    assert "Traceback" not in run.stderr
    assert os.listdir(tmp_path) == ["params.yaml"]


def test_auto_workers_none_on_cpu_some_on_cuda():
    assert resolve_workers("auto", torch.device("cpu")) == 0
    assert 1 <= resolve_workers("auto", torch.device("cuda")) <= 8
    assert resolve_workers(3, torch.device("cpu")) == 3


# -- items that cannot be read, or whose features are not finite -----------------------------------------


def one_line(info: pytest.ExceptionInfo) -> str:
    message = str(info.value)
    assert "\n" not in message, message
    return message


def npy_folder(root: Path, bad: dict[str, bytes | np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Two classes of four 5-d vectors; ``bad`` adds or replaces files {relative path: array or raw bytes}."""
    rng = np.random.default_rng(3)
    vectors = {}
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for i in range(4):
            vectors[f"{cls}/{i}.npy"] = rng.normal(size=5).astype(np.float32)
            np.save(root / cls / f"{i}.npy", vectors[f"{cls}/{i}.npy"])
    for rel, content in (bad or {}).items():
        if isinstance(content, np.ndarray):
            np.save(root / rel, content)
        else:
            (root / rel).write_bytes(content)
    return vectors


BAD_VECTORS = {
    "nan": np.array([0.1, np.nan, 0.3, 0.4, 0.5]),
    "inf": np.array([[0.1, 0.2, -np.inf, 0.4, 0.5]]),
    "text": b"0.1 0.2 0.3 0.4 0.5\n",  # a text file named .npy
    "corrupt-header": b"\x93NUMPY\x01\x00\x10\x00{'descr': <0x7f>\n",
}
BAD_VECTOR_WORDS = {"nan": "NaN or infinite", "inf": "NaN or infinite", "text": "not a .npy array",
                    "corrupt-header": "cannot read the .npy array"}  # fmt: skip


@pytest.mark.parametrize("kind", list(BAD_VECTORS))
def test_bad_npy_vector_fails_naming_it(tmp_path, kind):
    """A NaN/inf vector, a text file or a damaged header: extract stops with one line naming that file."""
    npy_folder(tmp_path / "vec", {"b/2.npy": BAD_VECTORS[kind]})
    manifest = prepare(prepare_params(source="npy", path=str(tmp_path / "vec"), query_size=1, limit_per_class=0))
    dest = tmp_path / "out" / "features.h5"
    with pytest.raises(GraphhashError) as info:
        extract(manifest, extract_params(batch_size=3), dest)
    message = one_line(info)
    assert message.startswith(f"{tmp_path / 'vec' / 'b' / '2.npy'}: ")
    assert BAD_VECTOR_WORDS[kind] in message and "extract.on_bad_image: skip" in message
    assert "pickle" not in message.lower() and "0x" not in message
    assert not dest.exists()


@pytest.mark.parametrize("kind", list(BAD_VECTORS))
def test_bad_npy_vector_is_skipped_and_recorded(tmp_path, kind):
    """With on_bad_image: skip the bad vector is left out and listed in skipped_ids; the others are kept as is."""
    vectors = npy_folder(tmp_path / "vec", {"b/2.npy": BAD_VECTORS[kind]})
    manifest = prepare(prepare_params(source="npy", path=str(tmp_path / "vec"), query_size=1, limit_per_class=0))
    extract(manifest, extract_params(batch_size=3, on_bad_image="skip"), tmp_path / "f.h5")
    fs = read_features(tmp_path / "f.h5")
    expected_ids = sorted(set(vectors) - {"b/2.npy"})
    assert fs.ids == expected_ids
    assert json.loads(fs.attrs["skipped_ids"]) == ["b/2.npy"]
    np.testing.assert_array_equal(fs.features, np.stack([vectors[i] for i in expected_ids]))
    assert fs.labels.tolist() == [0, 0, 0, 0, 1, 1, 1]


class NonFiniteOn(torch.nn.Module):
    """Wraps a backbone's model: rows whose input image is uniformly dark give NaN, uniformly bright give inf."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.inner = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.inner(x).clone()
        flat = x.flatten(1)
        out[flat.max(dim=1).values < -0.9] = float("nan")  # black: (0 - 127) / 128
        out[flat.min(dim=1).values > 0.9] = float("inf")  # white: (255 - 127) / 128
        return out


@pytest.fixture
def non_finite_backbone(monkeypatch):
    def load(*args):
        backbone = load_backbone(*args)
        backbone.model = NonFiniteOn(backbone.model).eval()
        return backbone

    monkeypatch.setattr(extract_module, "load_backbone", load)


def uniform_png(path: Path, level: int) -> None:
    Image.new("RGB", (20, 24), (level, level, level)).save(path)


@pytest.mark.parametrize(("level", "name"), [(0, "black.png"), (255, "white.png")])
def test_backbone_non_finite_features_fail_naming_the_item(tmp_path, non_finite_backbone, level, name):
    """A backbone giving NaN (or inf) features for one image stops extract with one line naming that image."""
    folder = image_folder(tmp_path / "imgs")
    uniform_png(folder / "dogs" / name, level)
    manifest = prepare(prepare_params(source="folder", path=str(folder), query_size=1, limit_per_class=0))
    dest = tmp_path / "out" / "features.h5"
    with pytest.raises(GraphhashError) as info:
        extract(manifest, extract_params(batch_size=3), dest)
    message = one_line(info)
    assert message.startswith(f"{folder / 'dogs' / name}: ")
    assert "NaN or infinite" in message and "extract.on_bad_image: skip" in message
    assert not dest.exists()


def test_backbone_non_finite_features_are_skipped(tmp_path, non_finite_backbone):
    """Under skip, the items with non-finite features are left out and recorded; the others equal a clean run."""
    folder = image_folder(tmp_path / "imgs")
    manifest = prepare(prepare_params(source="folder", path=str(folder), query_size=1, limit_per_class=0))
    extract(manifest, extract_params(batch_size=3), tmp_path / "clean.h5")
    uniform_png(folder / "dogs" / "black.png", 0)
    uniform_png(folder / "cats" / "white.png", 255)
    manifest = prepare(prepare_params(source="folder", path=str(folder), query_size=1, limit_per_class=0))
    extract(manifest, extract_params(batch_size=3, on_bad_image="skip"), tmp_path / "f.h5")
    fs, clean = read_features(tmp_path / "f.h5"), read_features(tmp_path / "clean.h5")
    assert json.loads(fs.attrs["skipped_ids"]) == ["cats/white.png", "dogs/black.png"]
    assert fs.ids == clean.ids == [f"{cls}/{i}.png" for cls in ("cats", "dogs") for i in range(3)]
    assert np.isfinite(fs.features).all()
    np.testing.assert_allclose(fs.features, clean.features, rtol=1e-5, atol=1e-5)


def unreadable_links(folder: Path) -> dict[str, str]:
    """A dangling link and a link to itself in class folders; {item id: what reading it says}."""
    (folder / "cats" / "gone.jpg").symlink_to(folder / "cats" / "deleted.jpg")
    os.symlink("self.jpg", folder / "dogs" / "self.jpg")
    return {"cats/gone.jpg": "No such file or directory", "dogs/self.jpg": "Too many levels of symbolic links"}


@pytest.mark.parametrize("item", ["cats/gone.jpg", "dogs/self.jpg"])
def test_unreadable_link_fails_extract_naming_the_file(tmp_path, item):
    """prepare lists a dangling link and a link loop; extract under fail stops with one line naming the first."""
    folder = image_folder(tmp_path / "imgs")
    reasons = unreadable_links(folder)
    if item == "dogs/self.jpg":
        (folder / "cats" / "gone.jpg").unlink()
    manifest = prepare(prepare_params(source="folder", path=str(folder), query_size=1, limit_per_class=0))
    assert item in manifest.ids
    dest = tmp_path / "out" / "features.h5"
    with pytest.raises(GraphhashError) as info:
        extract(manifest, extract_params(batch_size=4), dest)
    message = one_line(info)
    assert message.startswith(f"{folder / item}: cannot read: {reasons[item]}")
    assert "extract.on_bad_image: skip" in message
    assert not dest.exists()


def test_unreadable_links_are_skipped(tmp_path):
    """Under skip, the dangling link and the link loop are left out and listed in skipped_ids."""
    folder = image_folder(tmp_path / "imgs")
    unreadable_links(folder)
    manifest = prepare(prepare_params(source="folder", path=str(folder), query_size=1, limit_per_class=0))
    extract(manifest, extract_params(batch_size=4, on_bad_image="skip"), tmp_path / "f.h5")
    fs = read_features(tmp_path / "f.h5")
    assert json.loads(fs.attrs["skipped_ids"]) == ["cats/gone.jpg", "dogs/self.jpg"]
    assert fs.ids == [f"{cls}/{i}.png" for cls in ("cats", "dogs") for i in range(3)]
    assert np.isfinite(fs.features).all()


def test_stage_script_on_an_unreadable_link_exits_2_with_one_line(tmp_path):
    """The extract stage, run as DVC runs it, exits with status 2 and one error line naming the dangling link."""
    repo = Path(__file__).resolve().parents[1]
    folder = image_folder(tmp_path / "imgs")
    (folder / "cats" / "gone.jpg").symlink_to(folder / "cats" / "deleted.jpg")
    work = tmp_path / "work"
    (work / "data").mkdir(parents=True)
    (work / "params.yaml").write_text("extract:\n  weights: none\n  image_size: 32\n  device: cpu\n")
    prepare(prepare_params(source="folder", path=str(folder), query_size=1, limit_per_class=0)).save(
        work / "data" / "manifest.json"
    )
    args = ["--manifest", "data/manifest.json", "--features", "data/features.h5"]
    run = subprocess.run(
        [sys.executable, str(repo / "stages" / "extract.py"), *args],
        cwd=work,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2, run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [
        f"error: {folder / 'cats' / 'gone.jpg'}: cannot read: No such file or directory "
        "(set extract.on_bad_image: skip to leave such items out)"
    ], run.stderr
    assert "Traceback" not in run.stderr
    assert not (work / "data" / "features.h5").exists()


def test_weights_path_that_is_a_folder_stops_extract_saying_so(tmp_path):
    """extract.weights_path naming a folder: one line saying it is a folder, not that it does not exist."""
    (tmp_path / "weights").mkdir()
    manifest = prepare(prepare_params(limit_per_class=2, query_size=1))
    with pytest.raises(GraphhashError) as info:
        extract(manifest, extract_params(weights_path=str(tmp_path / "weights")), tmp_path / "f.h5")
    message = one_line(info)
    assert message == f"extract.weights_path: {tmp_path / 'weights'}: is a folder, not a state-dict file"
    assert not (tmp_path / "f.h5").exists()


# -- the features file as a contract ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def features_file(tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("features") / "features.h5"
    extract(prepare(prepare_params(limit_per_class=2, query_size=1)), extract_params(), dest)
    return dest


def test_features_file_carries_its_format_tag(features_file):
    with h5py.File(features_file, "r") as f:
        assert f.attrs["format"] == "graphhash-features/2"


def contract_error(path: Path) -> str:
    with pytest.raises(GraphhashError) as info:
        read_features(path)
    message = one_line(info)
    assert message.startswith(f"{path}: ") and message.endswith("; rerun the extract stage")
    return message


def test_reading_another_kind_as_features_names_it(tmp_path):
    """A codes file (another graphhash kind) read as features: one line naming the file, its kind, the stage."""
    from graphhash.files.codes import CodeSet, write_codes

    path = tmp_path / "codes.h5"
    empty = np.zeros((1, 1), dtype=np.uint8)
    write_codes(path, CodeSet("lsh", 8, "image", empty, empty, ["q"], ["d"], np.zeros(1), np.zeros(1)))
    message = contract_error(path)
    assert "not a features file" in message and "graphhash-codes/2" in message


def test_features_of_a_newer_version_say_so(features_file, tmp_path):
    """A features file tagged with format version 3: one line giving both versions and the stage to rerun."""
    path = tmp_path / "newer.h5"
    path.write_bytes(features_file.read_bytes())
    with h5py.File(path, "r+") as f:
        f.attrs["format"] = "graphhash-features/3"
    message = contract_error(path)
    assert "features format 3" in message and "reads 2" in message and "not a features file" not in message


@pytest.mark.parametrize("content", [b"not an HDF5 file\n", b""], ids=["text", "empty"])
def test_non_hdf5_features_file_says_it_cannot_be_opened(tmp_path, content):
    path = tmp_path / "features.h5"
    path.write_bytes(content)
    assert "cannot open as a features file" in contract_error(path)


def test_features_file_written_by_an_older_graphhash_without_tag(features_file, tmp_path):
    """A features file with no format attribute (written before the tags) is refused, naming the stage."""
    path = tmp_path / "old.h5"
    path.write_bytes(features_file.read_bytes())
    with h5py.File(path, "r+") as f:
        del f.attrs["format"]
    assert "not a features file (format missing" in contract_error(path)
