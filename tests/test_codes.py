"""Code files: bit packing and the HDF5 contract between hashing methods and the evaluation."""

from __future__ import annotations

from dataclasses import replace

import h5py
import numpy as np
import pytest

from graphhash.errors import GraphhashError
from graphhash.files.codes import (
    CodeSet,
    code_file,
    find_code_files,
    nrdh_method,
    pack,
    read_code_kind,
    read_codes,
    unpack,
    write_codes,
)
from graphhash.files.features import write_features


def test_pack_bit_zero_is_most_significant_bit_of_byte_zero():
    """Bits 0 and 8 set give bytes [0x80, 0x80]; the last byte is zero-padded on the right."""
    packed = pack(np.array([[1, 0, 0, 0, 0, 0, 0, 0, 1]], dtype=bool))
    assert packed.tolist() == [[0x80, 0x80]]
    assert pack(np.array([[0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 1]], dtype=bool)).tolist() == [[0x01, 0x60]]


@pytest.mark.parametrize("bits", [1, 7, 8, 13, 64])
def test_pack_shape_dtype_and_value(bits):
    """pack gives uint8 (n, ceil(bits / 8)) whose bytes read the bits big-endian, bit 0 first."""
    x = np.random.default_rng(bits).random((5, bits)) < 0.5
    packed = pack(x)
    assert packed.dtype == np.uint8
    assert packed.shape == (5, -(-bits // 8))
    for row in range(5):
        for byte in range(packed.shape[1]):
            chunk = list(x[row, 8 * byte : 8 * byte + 8]) + [False] * 8
            assert packed[row, byte] == sum(1 << (7 - k) for k in range(8) if chunk[k])


@pytest.mark.parametrize("bits", [1, 7, 8, 13, 64])
def test_unpack_inverts_pack(bits):
    """unpack(pack(x), bits) returns the original bool codes."""
    x = np.random.default_rng(100 + bits).random((6, bits)) < 0.5
    out = unpack(pack(x), bits)
    assert out.dtype == bool
    np.testing.assert_array_equal(out, x)


def sample_codes(bits: int = 13) -> CodeSet:
    rng = np.random.default_rng(0)
    return CodeSet(
        method="nrdh",
        bits=bits,
        modality="image",
        query=pack(rng.random((3, bits)) < 0.5),
        database=pack(rng.random((5, bits)) < 0.5),
        query_ids=["q/0.jpg", "q/ü1.jpg", "q/2.jpg"],
        database_ids=[f"db/{i}.png" for i in range(5)],
        query_labels=np.array([0, 2, 1]),
        database_labels=np.array([1, 1, 0, 2, 2], dtype=np.int32),
    )


def test_write_read_round_trip(tmp_path):
    """Every field, and the method, bits and modality attributes, survive a write and a read; labels come back
    int64."""
    codes = sample_codes()
    dest = tmp_path / "codes" / "nrdh-13.h5"
    write_codes(dest, codes)
    back = read_codes(dest)
    assert back.method == "nrdh" and isinstance(back.method, str)
    assert back.bits == 13 and isinstance(back.bits, int)
    assert back.modality == "image" and isinstance(back.modality, str)
    for part in ("query", "database"):
        np.testing.assert_array_equal(getattr(back, part), getattr(codes, part))
        assert getattr(back, part).dtype == np.uint8
        assert getattr(back, f"{part}_ids") == getattr(codes, f"{part}_ids")
        np.testing.assert_array_equal(getattr(back, f"{part}_labels"), getattr(codes, f"{part}_labels"))
        assert getattr(back, f"{part}_labels").dtype == np.int64
    with h5py.File(dest, "r") as f:  # the file layout other methods and the evaluation rely on
        assert set(f) == {"query", "database", "query_ids", "database_ids", "query_labels", "database_labels"}
        assert dict(f.attrs) == {"format": "graphhash-codes/2", "method": "nrdh", "bits": 13, "modality": "image"}


def test_label_matrices_round_trip_as_bool_and_are_stored_as_bytes(tmp_path):
    """Multi-label codes: (n, L) 0/1 labels are written as uint8 and read back as the same bool matrix."""
    rng = np.random.default_rng(3)
    labels = {part: rng.random((n, 4)) < 0.5 for part, n in (("query", 3), ("database", 5))}
    codes = replace(sample_codes(), modality="text", query_labels=labels["query"], database_labels=labels["database"])
    write_codes(tmp_path / "c.h5", codes)
    back = read_codes(tmp_path / "c.h5")
    for part in ("query", "database"):
        assert getattr(back, f"{part}_labels").dtype == bool
        np.testing.assert_array_equal(getattr(back, f"{part}_labels"), labels[part])
    with h5py.File(tmp_path / "c.h5", "r") as f:
        assert f["query_labels"].dtype == np.uint8 and f.attrs["modality"] == "text"


def test_write_leaves_no_temporary_file(tmp_path):
    """After writing (and overwriting) a code file, its folder holds only that file."""
    dest = tmp_path / "nrdh-13.h5"
    write_codes(dest, sample_codes())
    write_codes(dest, sample_codes())
    assert [p.name for p in tmp_path.iterdir()] == ["nrdh-13.h5"]


def test_write_removes_a_stale_temporary_file_of_a_killed_write(tmp_path):
    """A temporary file left by an earlier write of the same file (killed midway) is removed; others are kept."""
    (tmp_path / ".nrdh-13.h5.k1ll3d.tmp").write_bytes(b"half an HDF5 file")
    (tmp_path / ".other.h5.k1ll3d.tmp").write_bytes(b"another file's")
    write_codes(tmp_path / "nrdh-13.h5", sample_codes())
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.h5.k1ll3d.tmp", "nrdh-13.h5"]


def test_write_onto_a_folder_is_one_line_naming_it(tmp_path):
    """Writing codes where a folder stands is a one-line GraphhashError naming it; the folder is untouched."""
    dest = tmp_path / "nrdh-13.h5"
    (dest / "inside").mkdir(parents=True)
    with pytest.raises(GraphhashError) as info:
        write_codes(dest, sample_codes())
    message = str(info.value)
    assert message.startswith(f"{dest}: ") and "is a folder" in message and "\n" not in message
    assert [p.name for p in dest.iterdir()] == ["inside"]
    assert [p.name for p in tmp_path.iterdir()] == ["nrdh-13.h5"]


def test_read_code_kind_gives_method_bits_and_modality(tmp_path):
    """read_code_kind gives the (method, bits, modality) written, as str, int and str."""
    dest = tmp_path / "c.h5"
    write_codes(dest, replace(sample_codes(bits=24), method="nrdh-gcn", modality="text"))
    method, bits, modality = read_code_kind(dest)
    assert (method, bits, modality) == ("nrdh-gcn", 24, "text")
    assert type(method) is str and type(bits) is int and type(modality) is str


def test_find_code_files_goes_by_what_files_hold_not_their_names(tmp_path):
    """find_code_files maps (method, bits, modality) to each code file below a folder, whatever it is called."""
    write_codes(tmp_path / "a" / "x.h5", replace(sample_codes(bits=8), method="cmfh", modality="image"))
    write_codes(tmp_path / "b.h5", replace(sample_codes(bits=8), method="cmfh", modality="text"))
    assert find_code_files(tmp_path) == {("cmfh", 8, "image"): tmp_path / "a" / "x.h5",
                                         ("cmfh", 8, "text"): tmp_path / "b.h5"}  # fmt: skip
    assert code_file(tmp_path, "cmfh", 8, "text") == tmp_path / "cmfh-8-text.h5"


@pytest.mark.parametrize(("filter_name", "method"), [("gcn", "nrdh-gcn"), ("cheby", "nrdh-cheby")])
def test_nrdh_method_names(filter_name, method):
    assert nrdh_method(filter_name) == method


def one_line_naming(info: pytest.ExceptionInfo, path) -> str:
    """The error's message, checked to be one line that names ``path`` and the stages writing code files."""
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    assert message.endswith("; rerun the hash or baselines stage")
    return message


def test_read_non_code_hdf5_is_graphhash_error(tmp_path):
    """An HDF5 file with no format tag (not written by graphhash) is not a codes file, one line naming it."""
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("features", data=np.zeros((2, 3)))
    with pytest.raises(GraphhashError) as info:
        read_codes(path)
    assert "not a codes file (format missing" in one_line_naming(info, path)


def features_file(path):
    """A valid features file (another graphhash kind), as extract writes it."""
    write_features(
        path,
        [{"image": np.zeros((2, 3), dtype=np.float32)}],
        dims={"image": 3},
        ids=["a", "b"],
        labels=np.array([0, 1]),
        masks={"query": np.array([True, False]), "database": np.array([False, True]), "train": np.array([False, True])},
        attrs={},
    )
    return path


@pytest.mark.parametrize("read", [read_codes, read_code_kind])
def test_reading_a_features_file_as_codes_names_the_kind(tmp_path, read):
    """A features file read as codes: one line naming the file, the kind found and the stage to rerun."""
    path = features_file(tmp_path / "features.h5")
    with pytest.raises(GraphhashError) as info:
        read(path)
    message = one_line_naming(info, path)
    assert "not a codes file" in message and "graphhash-features/2" in message


@pytest.mark.parametrize("read", [read_codes, read_code_kind])
def test_codes_of_a_newer_format_version_say_so(tmp_path, read):
    """A codes file of format version 3 (a newer graphhash): one line giving both versions and the stage."""
    path = tmp_path / "c.h5"
    write_codes(path, sample_codes())
    with h5py.File(path, "r+") as f:
        f.attrs["format"] = "graphhash-codes/3"
    with pytest.raises(GraphhashError) as info:
        read(path)
    message = one_line_naming(info, path)
    assert "codes format 3" in message and "reads 2" in message
    assert "not a codes file" not in message


def test_read_not_hdf5_is_graphhash_error(tmp_path):
    """A file that is not HDF5 at all, or a missing file, is one line naming the path and the stage."""
    path = tmp_path / "codes.h5"
    path.write_bytes(b"not hdf5\n")
    with pytest.raises(GraphhashError) as info:
        read_codes(path)
    assert "cannot open as a codes file" in one_line_naming(info, path)
    missing = tmp_path / "missing.h5"
    with pytest.raises(GraphhashError) as info:
        read_codes(missing)
    assert "no such file" in one_line_naming(info, missing)


def test_codes_file_missing_a_dataset_is_damaged(tmp_path):
    """A tagged codes file without one of its datasets is reported as damaged, one line naming it."""
    path = tmp_path / "c.h5"
    write_codes(path, sample_codes())
    with h5py.File(path, "r+") as f:
        del f["database_ids"]
    with pytest.raises(GraphhashError) as info:
        read_codes(path)
    assert "damaged codes file" in one_line_naming(info, path)
