"""Data sources: listings (ids, labels, classes, native query) and reading items, from folders and tars."""

from __future__ import annotations

import io
import json
import os
import re
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from conftest import CIFAR_CLASSES, cifar_paths, make_tar
from PIL import Image
from sklearn.datasets import load_digits

from graphhash.data.images import BadItemError
from graphhash.data.sources import SOURCES, SyntheticSource, open_source
from graphhash.data.sources.images import Cifar10Source, DigitsSource, FolderSource
from graphhash.data.sources.paired import MirflickrTagsSource, PairedFeaturesSource, WikiSource
from graphhash.data.sources.vectors import NpySource
from graphhash.data.storage import TarStore, _plain_members, is_hidden
from graphhash.database.additions import image_files
from graphhash.errors import GraphhashError
from graphhash.files.manifest import Manifest
from graphhash.params import validate
from graphhash.params.prepare import PrepareParams
from graphhash.pipeline.prepare import prepare

# -- folder ---------------------------------------------------------------------------------------------

FOLDER_FILES = [
    "zebra/a.png",
    "zebra/B.JPG",  # upper-case extension counts
    "zebra/sub/c.jpeg",  # nested sub-folder belongs to its class
    "zebra/.hidden.jpg",  # hidden: ignored
    "zebra/notes.txt",  # not an image extension: ignored
    "apple/y.webp",
    "apple/x.bmp",
    "apple/.cache/z.png",  # inside a hidden folder: ignored
    "Mango/m.jpg",
    ".git/config.png",  # hidden folder at the root: not a class
    "README.txt",  # loose file at the root: ignored
]
# Sorted by id (byte order: upper case first); labels index the sorted class names.
FOLDER_CLASSES = ["Mango", "apple", "zebra"]
FOLDER_IDS = ["Mango/m.jpg", "apple/x.bmp", "apple/y.webp", "zebra/B.JPG", "zebra/a.png", "zebra/sub/c.jpeg"]
FOLDER_LABELS = [0, 1, 1, 2, 2, 2]


@pytest.fixture
def folder(tmp_path, make_tree):
    return make_tree(tmp_path / "images", FOLDER_FILES)


def test_folder_listing(folder):
    """Ids are sorted '/'-relative paths of image files only; labels index the sorted class names."""
    listing = FolderSource(str(folder)).listing()
    assert listing.ids == FOLDER_IDS
    assert listing.classes == FOLDER_CLASSES
    assert listing.labels.tolist() == FOLDER_LABELS
    assert listing.labels.dtype == np.int64
    assert listing.native_query is None


def test_folder_read_and_image(folder):
    """read() returns the file's bytes, and image() decodes them to the pixels that were written."""
    source = FolderSource(str(folder))
    assert source.read("zebra/sub/c.jpeg") == (folder / "zebra/sub/c.jpeg").read_bytes()
    png = folder / "zebra/a.png"
    assert np.array_equal(np.asarray(source.image("zebra/a.png")), np.asarray(Image.open(png).convert("RGB")))
    assert str(png) in source.where("zebra/a.png")
    assert source.holds_vectors is False


def test_folder_bad_image_names_its_path(folder):
    """A corrupt file raises BadItemError naming its full path."""
    (folder / "apple/x.bmp").write_bytes(b"BM broken")
    with pytest.raises(BadItemError, match=re.escape(str(folder / "apple/x.bmp"))):
        FolderSource(str(folder)).image("apple/x.bmp")


def test_empty_class_folder_is_named(folder):
    """A class folder without images (only ignored files) is an error naming that folder."""
    (folder / "empty").mkdir()
    (folder / "empty/.DS_Store").write_bytes(b"x")
    with pytest.raises(GraphhashError, match=re.escape(str(folder / "empty"))):
        FolderSource(str(folder)).listing()


def test_root_without_class_folders(tmp_path, make_tree):
    """Images directly under the root, with no class folders, are an error naming the root."""
    root = make_tree(tmp_path / "flat", ["a.png", "b.png"])
    with pytest.raises(GraphhashError, match="no class folders") as info:
        FolderSource(str(root)).listing()
    assert str(root) in str(info.value)


@pytest.mark.parametrize("cls", [FolderSource, NpySource, Cifar10Source])
def test_nonexistent_path_names_prepare_path(tmp_path, cls):
    """A path that does not exist is an error naming prepare.path and the path."""
    missing = str(tmp_path / "nowhere")
    with pytest.raises(GraphhashError, match=r"prepare\.path") as info:
        cls(missing)
    assert missing in str(info.value)


# -- cifar10 --------------------------------------------------------------------------------------------


def cifar_expected() -> tuple[list[str], list[int], list[bool]]:
    """Ids (relative to the cifar10 folder), labels and native query flags the tiny layout must give."""
    ids = sorted(p.removeprefix("cifar10/") for p in cifar_paths(4, 2))
    labels = [CIFAR_CLASSES.index(i.split("/")[1]) for i in ids]
    return ids, labels, [i.startswith("test/") for i in ids]


@pytest.fixture
def cifar_tar(tmp_path, cifar_dir):
    return make_tar(cifar_dir / "cifar10", tmp_path / "cifar10.tar")


@pytest.mark.parametrize("where", ["parent", "cifar10", "tar"])
def test_cifar10_listing(cifar_dir, cifar_tar, where):
    """The parent folder, the cifar10 folder itself and the tar all list the same items, test/ being the queries."""
    path = {"parent": cifar_dir, "cifar10": cifar_dir / "cifar10", "tar": cifar_tar}[where]
    listing = Cifar10Source(str(path)).listing()
    ids, labels, query = cifar_expected()
    assert listing.ids == ids
    assert listing.labels.tolist() == labels
    assert listing.classes == list(CIFAR_CLASSES)
    assert listing.native_query.dtype == bool
    assert listing.native_query.tolist() == query


def test_cifar10_tar_ignores_hidden_members_like_the_folder(tmp_path, cifar_dir):
    """Hidden files (e.g. macOS ._ files) are skipped in the tar just as in the folder."""
    (cifar_dir / "cifar10/train/cat/._cat_00.jpg").write_bytes(b"\x00\x05\x16\x07")
    (cifar_dir / "cifar10/test/.trash").mkdir()
    (cifar_dir / "cifar10/test/.trash/x.jpg").write_bytes(b"junk")
    tar = make_tar(cifar_dir / "cifar10", tmp_path / "c.tar")
    from_folder, from_tar = Cifar10Source(str(cifar_dir)).listing(), Cifar10Source(str(tar)).listing()
    assert from_tar.ids == from_folder.ids == cifar_expected()[0]
    assert from_tar.classes == from_folder.classes


def test_cifar10_tar_read_matches_file(cifar_dir, cifar_tar):
    """Reading an item from the tar gives the file's exact bytes, and it decodes."""
    source = Cifar10Source(str(cifar_tar))
    for item in ("train/bird/bird_00.jpg", "test/dog/dog_01.jpg"):
        assert source.read(item) == (cifar_dir / "cifar10" / item).read_bytes()
    assert source.image("test/dog/dog_01.jpg").size == (8, 8)
    assert str(cifar_tar) in source.where("test/dog/dog_01.jpg")


def test_cifar10_tar_without_cifar10_prefix(tmp_path, cifar_dir):
    """A tar whose members start at train/ and test/ (no cifar10/ folder) gives the same ids."""
    tar = tmp_path / "flat.tar"
    make_tar(cifar_dir / "cifar10/train", tar, arcname="train")
    with tarfile.open(tar, "a") as t:
        t.add(cifar_dir / "cifar10/test", arcname="test")
    assert Cifar10Source(str(tar)).listing().ids == cifar_expected()[0]


def test_cifar10_tar_with_dot_slash_members(tmp_path, cifar_dir):
    """A tar whose member names start with './' (as `tar cf c.tar ./cifar10` writes them) lists normally."""
    tar = make_tar(cifar_dir / "cifar10", tmp_path / "dot.tar", arcname="./cifar10")
    assert Cifar10Source(str(tar)).listing().ids == cifar_expected()[0]


def tarfile_members(tar: Path) -> list[tuple[str, bool, bool, int, int]]:
    with tarfile.open(tar) as t:
        return [(m.name, m.isfile(), m.isdir(), m.offset_data, m.size) for m in t]


TAR_CASES = [(fmt, depth) for fmt in (tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT)
             for depth in (1, 3, 6) if not (fmt == tarfile.USTAR_FORMAT and depth == 6)]  # fmt: skip


@pytest.mark.parametrize(("fmt", "depth"), TAR_CASES)  # depth 6: names over 255 characters, beyond ustar
def test_tar_index_matches_the_tarfile_module_in_every_format(tmp_path, cifar_dir, fmt, depth):
    """The plain-header reader lists what tarfile lists, in ustar (names over 100 characters split into a
    prefix and a name), GNU (long-name headers) and pax (records) formats, and every item reads back as the
    file's exact bytes."""
    arcname = "/".join(["d" * 45] * depth + ["cifar10"])
    tar = tmp_path / "nested.tar"
    with tarfile.open(tar, "w", format=fmt) as t:
        t.add(cifar_dir / "cifar10", arcname=arcname)
    members = tarfile_members(tar)
    assert max(len(m[0]) for m in members) > (255 if depth == 6 else 100 if depth == 3 else 0)
    assert _plain_members(tar) == members
    store = TarStore(tar).child(arcname)
    ids = sorted(f for split in ("train", "test") for c in store.subdirs(split) for f in store.files(f"{split}/{c}"))
    assert ids == sorted(cifar_expected()[0])
    for item in ids:
        assert store.read(item) == (cifar_dir / "cifar10" / item).read_bytes()


def test_tar_index_hands_links_and_bad_checksums_to_tarfile(tmp_path, cifar_dir):
    """A symbolic link member, or a header whose checksum does not match, is not read as a plain header."""
    (cifar_dir / "cifar10/link.jpg").symlink_to(cifar_dir / "cifar10/train/cat/cat_00.jpg")
    assert _plain_members(make_tar(cifar_dir / "cifar10", tmp_path / "link.tar")) is None
    (cifar_dir / "cifar10/link.jpg").unlink()
    tar = make_tar(cifar_dir / "cifar10", tmp_path / "plain.tar")
    assert _plain_members(tar) == tarfile_members(tar)
    data = bytearray(tar.read_bytes())
    data[tarfile_members(tar)[5][3] - 512] ^= 1  # the sixth header's name changes, its checksum does not
    tar.write_bytes(bytes(data))
    assert _plain_members(tar) is None
    with pytest.raises(GraphhashError, match=r"cannot read tar.*bad checksum"):
        TarStore(tar)


def test_cifar10_tar_without_test_folder(tmp_path, cifar_dir):
    """A tar with train/ but no test/ is a clear error saying test is missing."""
    tar = make_tar(cifar_dir / "cifar10/train", tmp_path / "train_only.tar", arcname="cifar10/train")
    with pytest.raises(GraphhashError, match="no test folder"):
        Cifar10Source(str(tar))


def test_cifar10_folder_with_different_classes(cifar_dir):
    """train and test holding different class folders is an error."""
    (cifar_dir / "cifar10/test/cat").rename(cifar_dir / "cifar10/test/kitten")
    with pytest.raises(GraphhashError, match="different class folders"):
        Cifar10Source(str(cifar_dir)).listing()


def test_cifar10_gzip_tar_is_rejected(tmp_path, cifar_dir):
    """A gzip-compressed tar is a clear error naming the file and asking for an uncompressed tar."""
    tgz = make_tar(cifar_dir / "cifar10", tmp_path / "cifar10.tgz", mode="w:gz")
    with pytest.raises(GraphhashError, match="uncompressed") as info:
        Cifar10Source(str(tgz))
    assert str(tgz) in str(info.value)


def test_cifar10_non_tar_file_is_rejected(tmp_path):
    """A file that is not a tar is an error naming prepare.path."""
    path = tmp_path / "cifar10.zip"
    path.write_bytes(b"PK\x03\x04" + b"\x00" * 600)
    with pytest.raises(GraphhashError, match=r"prepare\.path"):
        Cifar10Source(str(path))


# -- npy ------------------------------------------------------------------------------------------------


def test_npy_vectors(tmp_path):
    """Vectors of shape (D,) and (1, D), of any numeric dtype, load as float32 (D,) with their values."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    flat = np.arange(5, dtype=np.float64) / 4
    row = np.arange(5, dtype=np.int32).reshape(1, 5) * 3
    np.save(tmp_path / "a/flat.npy", flat)
    np.save(tmp_path / "b/row.npy", row)
    (tmp_path / "b/ignored.txt").write_text("x")
    source = NpySource(str(tmp_path))
    listing = source.listing()
    assert listing.ids == ["a/flat.npy", "b/row.npy"] and listing.labels.tolist() == [0, 1]
    assert source.holds_vectors is True
    for item, expected in (("a/flat.npy", [0, 0.25, 0.5, 0.75, 1.0]), ("b/row.npy", [0, 3, 6, 9, 12])):
        vector = source.vector(item)
        assert vector.dtype == np.float32 and vector.shape == (5,)
        assert vector.tolist() == expected


@pytest.mark.parametrize(
    "array",
    [
        np.zeros((3, 4), dtype=np.float32),  # a matrix, not a vector
        np.array(["a", "b", "c"]),  # not numeric
        np.array([{"x": 1}, None], dtype=object),  # pickled objects are refused
        np.zeros((0,), dtype=np.float32),  # empty
        np.float32(1.0),  # a scalar
    ],
    ids=["matrix", "strings", "objects", "empty", "scalar"],
)
def test_npy_bad_arrays_name_the_file(tmp_path, array):
    """Anything but a non-empty numeric (D,) or (1, D) array is a BadItemError naming the file."""
    path = tmp_path / "c" / "bad.npy"
    path.parent.mkdir()
    np.save(path, array, allow_pickle=True)
    with pytest.raises(BadItemError, match=re.escape(str(path))) as info:
        NpySource(str(tmp_path)).vector("c/bad.npy")
    assert "\n" not in str(info.value)


def test_npy_pickled_objects_say_so(tmp_path):
    """An object array (pickled Python objects) is refused, the message saying it holds Python objects."""
    path = tmp_path / "c" / "objects.npy"
    path.parent.mkdir()
    np.save(path, np.array([{"x": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(BadItemError, match="Python objects") as info:
        NpySource(str(tmp_path)).vector("c/objects.npy")
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "values",
    [[0.5, np.nan, 1.0], [np.inf, 0.0, 0.0], [[1.0, -np.inf, 2.0]]],
    ids=["nan", "inf", "row-with-minus-inf"],
)
def test_npy_non_finite_vector_is_a_bad_item(tmp_path, values):
    """A vector holding NaN or an infinity is a BadItemError naming the file, not features for later stages."""
    path = tmp_path / "c" / "v.npy"
    path.parent.mkdir()
    np.save(path, np.array(values, dtype=np.float64))
    with pytest.raises(BadItemError, match=r"NaN or infinite") as info:
        NpySource(str(tmp_path)).vector("c/v.npy")
    assert str(path) in str(info.value)


@pytest.mark.parametrize("text", [b"0.1 0.2 0.3\n", b"", b"\x93NUM"], ids=["text", "empty", "half-magic"])
def test_npy_file_without_numpy_header_is_not_an_npy_array(tmp_path, text):
    """A text (or empty) file named .npy says it is not a .npy array, and says nothing about pickles."""
    path = tmp_path / "c" / "x.npy"
    path.parent.mkdir()
    path.write_bytes(text)
    with pytest.raises(BadItemError) as info:
        NpySource(str(tmp_path)).vector("c/x.npy")
    message = str(info.value)
    assert message.startswith(str(path)) and "not a .npy array" in message
    assert "pickle" not in message.lower() and "\n" not in message


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


GOOD_NPY = _npy_bytes(np.arange(4, dtype=np.float32))


@pytest.mark.parametrize(
    "data",
    [
        GOOD_NPY[:10] + b"garbage!!" + GOOD_NPY[19:],  # unparseable header text
        b"\x93NUMPY\x01\x00\x10\x00{'descr': <object at 0x7f00>}\n",  # header that tokenize chokes on
        b"\x93NUMPY\x01\x00\xff\xff" + b"x" * 20,  # header length beyond the file
        b"\x93NUMPY\x01\x00",  # magic and version, then nothing
        b"\x93NUMPY\x09\x00" + GOOD_NPY[8:],  # a format version numpy does not know
        GOOD_NPY.replace(b"'<f4'", b"'<zz'"),  # unknown dtype
        GOOD_NPY.replace(b"(4,)", b"(x4)"),  # bad shape
        GOOD_NPY[:-3],  # data cut short
    ],
    ids=["garbled", "untokenizable", "long-header", "no-header", "version-9", "bad-dtype", "bad-shape", "truncated"],
)
def test_npy_damaged_header_is_one_line_without_memory_addresses(tmp_path, data):
    """A damaged .npy file is a BadItemError naming the file, in one line with no object address (0x...)."""
    path = tmp_path / "c" / "broken.npy"
    path.parent.mkdir()
    path.write_bytes(data)
    with pytest.raises(BadItemError) as info:
        NpySource(str(tmp_path)).vector("c/broken.npy")
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert "0x" not in message and "object at" not in message
    assert "pickle" not in message.lower()


# -- unreadable files -----------------------------------------------------------------------------------


def _dangling(path):
    path.symlink_to(path.parent / "gone.jpg")


def _loop(path):
    os.symlink(path.name, path)  # a link to itself


def _no_permission(path):
    path.write_bytes(b"x")
    path.chmod(0)


UNREADABLE = [
    pytest.param(_dangling, id="dangling-symlink"),
    pytest.param(_loop, id="symlink-loop"),
    pytest.param(
        _no_permission, id="no-permission", marks=pytest.mark.skipif(os.geteuid() == 0, reason="root reads anything")
    ),
]


@pytest.mark.parametrize("make", UNREADABLE)
def test_unreadable_image_is_listed_then_raises_bad_item_naming_it(folder, make):
    """An unreadable file is still listed (prepare keeps it); reading it is a one-line BadItemError naming it."""
    make(folder / "apple" / "self.jpg")
    source = FolderSource(str(folder))
    assert "apple/self.jpg" in source.listing().ids
    for read in (source.read, source.image):
        with pytest.raises(BadItemError) as info:
            read("apple/self.jpg")
        message = str(info.value)
        assert message.startswith(str(folder / "apple" / "self.jpg")) and "cannot read" in message
        assert "\n" not in message


@pytest.mark.parametrize("make", UNREADABLE)
def test_unreadable_npy_raises_bad_item_naming_it(tmp_path, make):
    """The same holds for a vector file of an npy source."""
    (tmp_path / "a").mkdir()
    np.save(tmp_path / "a" / "ok.npy", np.ones(3))
    make(tmp_path / "a" / "self.npy")
    with pytest.raises(BadItemError, match=re.escape(str(tmp_path / "a" / "self.npy"))):
        NpySource(str(tmp_path)).vector("a/self.npy")


def test_npy_source_has_no_images(tmp_path):
    """Asking an npy source for an image is a programming error."""
    (tmp_path / "a").mkdir()
    np.save(tmp_path / "a/v.npy", np.ones(3))
    with pytest.raises(NotImplementedError):
        NpySource(str(tmp_path)).image("a/v.npy")


def test_image_source_has_no_vectors(folder):
    """Asking an image source for a vector is a programming error."""
    with pytest.raises(NotImplementedError):
        FolderSource(str(folder)).vector("zebra/a.png")


# -- digits ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits():
    return DigitsSource(), load_digits()


def test_digits_listing(digits):
    """1,797 items in 10 classes '0'..'9', labels equal to scikit-learn's targets, ids unique and sorted."""
    source, reference = digits
    listing = source.listing()
    assert len(listing.ids) == 1797 == len(set(listing.ids))
    assert listing.ids == sorted(listing.ids)
    assert listing.classes == [str(d) for d in range(10)]
    assert np.array_equal(listing.labels, reference.target)
    assert listing.native_query is None


def test_digits_images_are_dark_ink_on_white(digits):
    """Each image is RGB 8x8 grey, ink 16 is black, background 0 is white, and levels in between are linear."""
    source, reference = digits
    ids = source.listing().ids
    for index in (1, 500, 1796):  # each holds both full ink (16) and blank (0) pixels
        img = source.image(ids[index])
        assert img.mode == "RGB" and img.size == (8, 8)
        pixels = np.asarray(img).astype(float)
        level = reference.images[index]  # 0..16
        assert np.array_equal(pixels[..., 0], pixels[..., 1]) and np.array_equal(pixels[..., 0], pixels[..., 2])
        assert (level == 16).any() and (level == 0).any()
        assert np.all(pixels[level == 16] == 0) and np.all(pixels[level == 0] == 255)
        assert np.all(np.abs(pixels[..., 0] - 255 * (16 - level) / 16) <= 0.5)


def test_digits_read_is_the_item_content(digits):
    """read() gives 64 bytes holding the item's 0..16 grey levels; distinct items give distinct bytes."""
    source, reference = digits
    ids = source.listing().ids
    data = source.read(ids[42])
    assert np.frombuffer(data, dtype=np.uint8).reshape(8, 8).tolist() == reference.images[42].astype(int).tolist()
    assert source.read(ids[0]) != source.read(ids[1])


# -- open_source ----------------------------------------------------------------------------------------


def test_sources_registry_names_the_eight_sources():
    """prepare.source chooses among exactly these names, each naming its class."""
    assert {"digits": DigitsSource, "folder": FolderSource, "cifar10": Cifar10Source, "npy": NpySource,
            "synthetic": SyntheticSource, "wiki": WikiSource, "mirflickr_tags": MirflickrTagsSource,
            "paired": PairedFeaturesSource} == SOURCES  # fmt: skip


def test_open_source_picks_the_source(folder, cifar_dir):
    """open_source maps each name to its source class; digits ignores the path."""
    assert isinstance(open_source("digits", ""), DigitsSource)
    assert isinstance(open_source("folder", str(folder)), FolderSource)
    assert isinstance(open_source("cifar10", str(cifar_dir)), Cifar10Source)
    assert type(open_source("npy", str(folder))) is NpySource
    assert isinstance(open_source("digits", "/no/such/folder"), DigitsSource)


def test_unknown_source_name_is_refused_by_the_params():
    """An unknown source name is an error naming prepare.source, raised when params.yaml is read."""
    with pytest.raises(GraphhashError, match=r"prepare\.source") as info:
        validate({"prepare": {"source": "imagenet", "path": "/data"}}, (PrepareParams,))
    assert "\n" not in str(info.value)


def test_files_left_out_are_counted_by_why(tmp_path, make_tree, caplog):
    """200 of 230 listed without a word (issue 30, 14): the loose images beside the class folders and the files of
    other kinds in them are counted, in the log and in the manifest; hidden files are not listed, nor counted."""
    more = ["Mango/m2.jpg", "Mango/m3.jpg", "apple/w.png"]  # so that every class has a query and a database item
    tree = make_tree(tmp_path / "photos", [*FOLDER_FILES, *more, "loose-1.jpg", "loose-2.png", ".DS_Store"])
    listing = FolderSource(str(tree)).listing()
    assert listing.ids == sorted([*FOLDER_IDS, *more])
    assert listing.left_out == {"beside the class folders, in no class": 3,  # README.txt and the two images
                                "in class folders, not ending in .jpg, .jpeg, .png, .bmp, .webp": 1}  # fmt: skip
    with caplog.at_level("WARNING", logger="graphhash"):
        manifest = prepare(PrepareParams(source="folder", path=str(tree), query_size=1))
    assert [r.getMessage() for r in caplog.records] == [
        "prepare: 3 files left out: beside the class folders, in no class",
        "prepare: 1 files left out: in class folders, not ending in .jpg, .jpeg, .png, .bmp, .webp",
    ]
    manifest.save(tmp_path / "manifest.json")
    assert Manifest.load(tmp_path / "manifest.json").left_out == listing.left_out
    clean = make_tree(tmp_path / "clean", ["a/1.png", "a/2.png", "b/3.png", "b/4.png"])
    manifest = prepare(PrepareParams(source="folder", path=str(clean), query_size=1))
    manifest.save(tmp_path / "clean.json")
    assert "left_out" not in json.loads((tmp_path / "clean.json").read_text())  # manifests as before


@pytest.mark.skipif(sys.platform == "darwin", reason="macOS file systems refuse names that are not UTF-8")
def test_a_file_name_that_is_not_utf8_is_one_line_naming_it(tmp_path, make_tree):
    """A UnicodeEncodeError traceback in content_digest before (issue 30, 10); now prepare refuses at listing."""
    tree = make_tree(tmp_path / "photos", ["cats/a.png", "dogs/b.png"])
    (tree / "cats" / "a.png").rename(os.fsdecode(bytes(tree / "cats") + b"/caf\xe9.png"))
    with pytest.raises(GraphhashError) as info:
        prepare(PrepareParams(source="folder", path=str(tree), query_size=1))
    assert str(info.value) == f"{tree}/cats/caf\\xe9.png: the file name is not UTF-8; rename it (e.g. with convmv)"


def test_hidden_files_follow_one_rule_in_sources_and_query_folders(tmp_path, make_tree):
    """macOS's ._photo.jpg (not an image) beside photo.jpg: skipped by a source and by graphhash search (issue 30,
    13)."""
    tree = make_tree(tmp_path / "q", ["photo.png", "inner/two.png"])
    (tree / "._photo.png").write_bytes(b"\x00\x05\x16\x07AppleDouble")
    (tree / ".thumbs").mkdir()
    (tree / ".thumbs" / "t.png").write_bytes(b"not an image")
    assert image_files([str(tree)]) == [tree / "inner" / "two.png", tree / "photo.png"]
    assert [is_hidden(name) for name in ("._photo.png", ".git/x", "a/.b/c", "./a", "a.b", "a/../b")] == [
        True, True, True, False, False, False]  # fmt: skip
