"""``/api/thumbnail``'s picture (``document_images.thumbnail``): a JPEG a browser shows, the
right way up, whatever the original is."""

from __future__ import annotations

import io

import numpy as np
import pillow_heif
import pytest
from PIL import Image

from indexer.entrypoints.document_images import DocumentImage, thumbnail

pillow_heif.register_heif_opener()  # these tests write HEIC files


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def thumb(data: bytes, side: int = 64) -> Image.Image:
    picture = Image.open(io.BytesIO(thumbnail(DocumentImage("key", data, "sha256:x"), side)))
    assert picture.format == "JPEG"
    return picture.convert("RGB")


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_a_format_browsers_do_not_show_gets_a_jpeg_thumbnail(fmt):
    picture = thumb(encoded(Image.new("RGB", (200, 100), (200, 30, 30)), fmt))

    assert picture.size == (64, 32)
    red, green, _ = picture.getpixel((32, 16))
    assert red > 150 and green < 80


def test_an_exif_rotated_portrait_comes_back_upright():
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown portrait
    picture = thumb(encoded(Image.new("RGB", (300, 200), (10, 90, 10)), "JPEG", exif=exif))

    assert picture.size == (43, 64)


def test_a_16_bit_grey_png_is_not_solid_white():
    levels = np.full((100, 100), 0x3000, dtype=np.uint16)
    levels[:, :50] = 0xC000
    grey = Image.fromarray(levels)
    assert grey.mode == "I;16"

    picture = thumb(encoded(grey, "PNG"))

    assert picture.getpixel((60, 32))[0] == pytest.approx(0x30, abs=3)
    assert picture.getpixel((4, 32))[0] == pytest.approx(0xC0, abs=3)
