"""Image decoding: every mode Pillow can give becomes 8-bit RGB, and unreadable files raise BadItemError."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from conftest import noise_image
from PIL import Image

from graphhash.data.images import BadItemError, decode, to_rgb
from graphhash.errors import GraphhashError
from graphhash.pixels import to_batch, to_pixels

NEAREST = "nearest"


def saved(tmp_path: Path, img: Image.Image, name: str, **kwargs) -> tuple[bytes, str]:
    """Write ``img`` to a file in tmp and return its bytes and its name."""
    path = tmp_path / name
    img.save(path, **kwargs)
    return path.read_bytes(), str(path)


def rgb_of(data: bytes, name: str) -> np.ndarray:
    img = decode(data, name)
    assert img.mode == "RGB"
    return np.asarray(img)


def test_grayscale_l(tmp_path):
    """An 8-bit grey level g becomes (g, g, g)."""
    grey = np.array([[0, 77], [200, 255]], dtype=np.uint8)
    out = rgb_of(*saved(tmp_path, Image.fromarray(grey, mode="L"), "g.png"))
    assert np.array_equal(out, np.repeat(grey[:, :, None], 3, axis=2))


def test_rgba_composites_over_white(tmp_path):
    """Fully transparent pixels become white, opaque ones keep their colour, half-transparent black is mid grey."""
    rgba = np.array([[[0, 0, 0, 0], [255, 0, 0, 255], [0, 0, 0, 128]]], dtype=np.uint8)
    out = rgb_of(*saved(tmp_path, Image.fromarray(rgba, mode="RGBA"), "a.png"))
    assert tuple(out[0, 0]) == (255, 255, 255)
    assert tuple(out[0, 1]) == (255, 0, 0)
    # black at alpha 128/255 over white: 255 * (1 - 128/255) = 127
    assert np.all(np.abs(out[0, 2].astype(int) - 127) <= 1)


def test_la_composites_over_white(tmp_path):
    """Grey with alpha: a transparent pixel is white, an opaque one keeps its grey level."""
    la = np.array([[[0, 0], [40, 255]]], dtype=np.uint8)
    out = rgb_of(*saved(tmp_path, Image.fromarray(la, mode="LA"), "la.png"))
    assert tuple(out[0, 0]) == (255, 255, 255)
    assert tuple(out[0, 1]) == (40, 40, 40)


def palette_image() -> Image.Image:
    img = Image.new("P", (3, 1))
    img.putpalette([0, 0, 0, 10, 200, 30, 250, 120, 5] + [0] * (256 * 3 - 9))
    img.putdata([0, 1, 2])
    return img


def test_palette_without_transparency(tmp_path):
    """Palette indices become their palette colours."""
    out = rgb_of(*saved(tmp_path, palette_image(), "p.png"))
    assert out[0].tolist() == [[0, 0, 0], [10, 200, 30], [250, 120, 5]]


@pytest.mark.parametrize("ext", ["png", "gif"])
def test_palette_with_transparent_index(tmp_path, ext):
    """The palette's transparent index becomes white; other indices keep their colours."""
    out = rgb_of(*saved(tmp_path, palette_image(), f"p.{ext}", transparency=0))
    assert out[0].tolist() == [[255, 255, 255], [10, 200, 30], [250, 120, 5]]


def test_rgb_with_transparent_colour_key(tmp_path):
    """A PNG tRNS colour key on an RGB image makes that colour transparent, hence white."""
    rgb = np.array([[[255, 0, 0], [0, 0, 255]]], dtype=np.uint8)
    out = rgb_of(*saved(tmp_path, Image.fromarray(rgb, mode="RGB"), "t.png", transparency=(255, 0, 0)))
    assert out[0].tolist() == [[255, 255, 255], [0, 0, 255]]


def test_cmyk_jpeg(tmp_path):
    """A CMYK JPEG becomes RGB (R, G, B = 255 - C, M, Y without black): M+Y is red, C alone is cyan."""
    img = Image.new("CMYK", (8, 8), (0, 255, 255, 0))
    img.paste((255, 0, 0, 0), (4, 0, 8, 8))  # right half cyan
    out = rgb_of(*saved(tmp_path, img, "c.jpg", quality=100)).astype(int)
    # JPEG is lossy: allow a few levels, away from the edge between the two halves
    assert np.all(np.abs(out[:, :2] - [255, 0, 0]) <= 6)
    assert np.all(np.abs(out[:, 6:] - [0, 255, 255]) <= 6)


def test_sixteen_bit_grey_png_is_scaled_not_clipped(tmp_path):
    """16-bit grey v becomes round(v / 257): 65535 -> 255, 32896 -> 128, 0 -> 0 (Pillow alone would clip)."""
    values = [0, 1000, 32896, 40000, 65535]
    grey16 = np.array([values], dtype=np.uint16)
    data, name = saved(tmp_path, Image.fromarray(grey16), "g16.png")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")  # really stored as 16 bits
    out = rgb_of(data, name)
    expected = [(v + 128) // 257 for v in values]  # integer rounding of v / 257 (no ties for integer v)
    assert expected[0] == 0 and expected[2] == 128 and expected[4] == 255
    assert out[0, :, 0].tolist() == expected
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 0], out[..., 2])


def test_one_bit(tmp_path):
    """A 1-bit image becomes black and white."""
    img = Image.new("1", (2, 1))
    img.putpixel((1, 0), 1)
    out = rgb_of(*saved(tmp_path, img, "b.png"))
    assert out[0].tolist() == [[0, 0, 0], [255, 255, 255]]


@pytest.mark.parametrize(("ext", "kwargs"), [("bmp", {}), ("webp", {"lossless": True}), ("png", {})])
def test_lossless_rgb_formats_keep_pixels(tmp_path, ext, kwargs):
    """BMP, lossless WEBP and PNG decode to exactly the pixels written."""
    img = noise_image(3, (5, 4))
    out = rgb_of(*saved(tmp_path, img, f"n.{ext}", **kwargs))
    assert np.array_equal(out, np.asarray(img))


def test_exif_orientation_is_applied(tmp_path):
    """A JPEG whose EXIF says 'rotate 90' decodes upright: a 4x2 stored image comes back 2 wide, 4 high."""
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW to display
    out = rgb_of(*saved(tmp_path, Image.new("RGB", (4, 2), (0, 128, 0)), "o.jpg", exif=exif.tobytes()))
    assert out.shape == (4, 2, 3)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "1", "I;16", "CMYK", "LA"])
def test_to_rgb_gives_rgb_for_every_mode(mode):
    """to_rgb on an in-memory image of any common mode gives an RGB image of the same size."""
    out = to_rgb(Image.new(mode, (3, 2)))
    assert out.mode == "RGB" and out.size == (3, 2)


@pytest.mark.parametrize("size", [8, 17])
def test_to_pixels_shape_and_layout(size):
    """Pixels are uint8 (S, S, 3), channels last, and the whole image is kept (no crop)."""
    img = Image.new("RGB", (20, 10), (255, 0, 0))
    img.paste((0, 0, 255), (10, 0, 20, 10))  # right half blue
    pixels = to_pixels(img, size, NEAREST)
    assert pixels.dtype == np.uint8 and pixels.shape == (size, size, 3)
    assert pixels.flags.c_contiguous
    assert np.all(pixels[:, 0, :] == np.array([255, 0, 0]))  # left column red
    assert np.all(pixels[:, -1, :] == np.array([0, 0, 255]))  # right column blue


def test_decode_then_to_pixels_on_each_format(tmp_path):
    """Files of every mode decode and resize to the same (S, S, 3) uint8 layout."""
    images = {
        "l.png": Image.new("L", (9, 7), 50),
        "rgba.png": Image.new("RGBA", (9, 7), (1, 2, 3, 0)),
        "p.png": palette_image(),
        "c.jpg": Image.new("CMYK", (9, 7)),
        "g16.png": Image.fromarray(np.full((7, 9), 65535, dtype=np.uint16)),
        "b.bmp": Image.new("RGB", (9, 7)),
        "w.webp": Image.new("RGB", (9, 7)),
    }
    for name, img in images.items():
        pixels = to_pixels(decode(*saved(tmp_path, img, name)), 12, "bilinear")
        assert pixels.shape == (12, 12, 3) and pixels.dtype == np.uint8, name


def truncated_jpeg(tmp_path: Path) -> bytes:
    data, _ = saved(tmp_path, noise_image(1, (64, 64)), "full.jpg", quality=95)
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    "make_bytes",
    [
        lambda tmp: b"this is not an image at all" * 10,
        lambda tmp: b"\x89PNG\r\n\x1a\n" + b"\x00" * 40,  # a PNG signature followed by junk
        truncated_jpeg,
        lambda tmp: b"",
    ],
    ids=["junk", "corrupt-png", "truncated-jpeg", "empty"],
)
def test_unreadable_bytes_raise_bad_image_naming_the_file(tmp_path, make_bytes):
    """Corrupt, truncated and empty files raise BadItemError (a GraphhashError) naming the file."""
    name = str(tmp_path / "cats" / "broken.jpg")
    with pytest.raises(BadItemError) as info:
        decode(make_bytes(tmp_path), name)
    assert isinstance(info.value, GraphhashError)
    assert name in str(info.value)


def test_empty_file_message_says_empty():
    """A zero-byte file is reported as an empty file."""
    with pytest.raises(BadItemError, match="empty file"):
        decode(b"", "zero.png")


@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear"])
@pytest.mark.parametrize(("source_size", "size"), [((32, 32), 160), ((97, 61), 40)])
def test_to_pixels_follows_pillows_filters(interpolation, source_size, size):
    """Up- and down-scaling agree with Pillow's own resize (random noise, the worst case: within 2 levels)."""
    img = noise_image(5, source_size)
    reference = np.asarray(img.resize((size, size), getattr(Image.Resampling, interpolation.upper())), dtype=int)
    diff = np.abs(to_pixels(img, size, interpolation).astype(int) - reference)
    assert diff.max() <= 2 and diff.mean() < 0.02


@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear", "nearest"])
def test_to_batch_of_mixed_sizes_is_each_image_resized_on_its_own_in_order(interpolation):
    """Images of one size are resized together: the values and order are those of one call per image."""
    images = [noise_image(seed, size) for seed, size in enumerate([(32, 32), (20, 9), (32, 32), (7, 40), (20, 9)])]
    batch = to_batch([np.asarray(img) for img in images], 24, interpolation)
    assert batch.shape == (5, 24, 24, 3) and batch.dtype == np.uint8
    for img, pixels in zip(images, batch, strict=True):
        assert np.array_equal(pixels, to_pixels(img, 24, interpolation))
