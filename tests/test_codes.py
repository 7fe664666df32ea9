"""Code files: bit packing and the HDF5 contract between hashing methods and the evaluation."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from graphhash.codes import CodeSet, pack, read_codes, unpack, write_codes
from graphhash.errors import GraphhashError


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
        query=pack(rng.random((3, bits)) < 0.5),
        database=pack(rng.random((5, bits)) < 0.5),
        query_ids=["q/0.jpg", "q/ü1.jpg", "q/2.jpg"],
        database_ids=[f"db/{i}.png" for i in range(5)],
        query_labels=np.array([0, 2, 1]),
        database_labels=np.array([1, 1, 0, 2, 2], dtype=np.int32),
    )


def test_write_read_round_trip(tmp_path):
    """Every field, and the method and bits attributes, survive a write and a read; labels come back int64."""
    codes = sample_codes()
    dest = tmp_path / "codes" / "nrdh-13.h5"
    write_codes(dest, codes)
    back = read_codes(dest)
    assert back.method == "nrdh" and isinstance(back.method, str)
    assert back.bits == 13 and isinstance(back.bits, int)
    for part in ("query", "database"):
        np.testing.assert_array_equal(getattr(back, part), getattr(codes, part))
        assert getattr(back, part).dtype == np.uint8
        assert getattr(back, f"{part}_ids") == getattr(codes, f"{part}_ids")
        np.testing.assert_array_equal(getattr(back, f"{part}_labels"), getattr(codes, f"{part}_labels"))
        assert getattr(back, f"{part}_labels").dtype == np.int64
    with h5py.File(dest, "r") as f:  # the file layout other methods and the evaluation rely on
        assert set(f) == {"query", "database", "query_ids", "database_ids", "query_labels", "database_labels"}
        assert dict(f.attrs) == {"method": "nrdh", "bits": 13}


def test_write_leaves_no_temporary_file(tmp_path):
    """After writing (and overwriting) a code file, its folder holds only that file."""
    dest = tmp_path / "nrdh-13.h5"
    write_codes(dest, sample_codes())
    write_codes(dest, sample_codes())
    assert [p.name for p in tmp_path.iterdir()] == ["nrdh-13.h5"]


def test_read_non_code_hdf5_is_graphhash_error(tmp_path):
    """An HDF5 file without the code datasets gives a GraphhashError naming the path."""
    path = tmp_path / "features.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("features", data=np.zeros((2, 3)))
    with pytest.raises(GraphhashError) as info:
        read_codes(path)
    assert str(path) in str(info.value)


def test_read_not_hdf5_is_graphhash_error(tmp_path):
    """A file that is not HDF5 at all, or a missing file, gives a GraphhashError naming the path."""
    path = tmp_path / "codes.h5"
    path.write_bytes(b"not hdf5\n")
    for bad in (path, tmp_path / "missing.h5"):
        with pytest.raises(GraphhashError) as info:
            read_codes(bad)
        assert str(bad) in str(info.value)
