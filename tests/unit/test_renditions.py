"""The normalisation step before Vision (``indexer.renditions``): images Vision reads go byte
for byte, the others become JPEG renditions within Vision's limits, upright, and the result
still describes the original."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from indexer.documents import Document, Embedding, IndexPin
from indexer.errors import InputLimitError, InvalidImageError
from indexer.indexing.pipeline import content_hash, prepare
from indexer.limits import inspect_image
from indexer.pixel_budget import read_header
from indexer.renditions import RENDITION_LONG_SIDE, for_vision, rendition_size, upright_rgb
from indexer.sources.base import ImageItem
from tests.fixtures.bad_images import png_bomb

ORIENTATION = 0x0112


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def gradient(width: int, height: int) -> Image.Image:
    """A picture whose left and right halves differ, so turning it shows."""
    image = Image.new("RGB", (width, height), (20, 40, 200))
    image.paste((230, 200, 10), (0, 0, width // 2, height))
    return image


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP", "TIFF", "BMP"])
def test_an_image_vision_reads_is_sent_byte_for_byte(fmt):
    data = encoded(gradient(300, 200), fmt)

    sent = for_vision(data)

    assert sent.data is data and not sent.is_rendition
    assert (sent.format, sent.width, sent.height) == (read_header(data).format, 300, 200)


def test_an_exif_rotated_jpeg_is_sent_untouched_and_described_as_displayed():
    exif = Image.Exif()
    exif[ORIENTATION] = 6  # stored landscape, shown portrait
    data = encoded(gradient(600, 400), "JPEG", exif=exif)

    sent = for_vision(data)

    assert sent.data is data
    assert (sent.width, sent.height) == (400, 600)


@pytest.mark.parametrize("fmt,content_type", [("HEIF", "image/heif"), ("AVIF", "image/avif")])
def test_a_format_vision_does_not_read_becomes_a_jpeg_describing_the_original(fmt, content_type):
    data = encoded(gradient(640, 480), fmt)

    sent = for_vision(data)

    assert sent.is_rendition and "not a format Azure AI Vision reads" in (sent.rendition_reason or "")
    assert (sent.format, sent.content_type, sent.width, sent.height) == (fmt, content_type, 640, 480)
    assert inspect_image(sent.data).format == "JPEG"  # within every limit of Vision's
    with Image.open(io.BytesIO(sent.data)) as rendition:
        assert rendition.size == (640, 480)  # small already: never enlarged


def test_a_side_of_16000_px_or_more_is_reduced_to_the_rendition_long_side():
    data = encoded(Image.new("RGB", (18_000, 1_500), (90, 120, 30)), "PNG")

    sent = for_vision(data)

    assert sent.is_rendition and (sent.width, sent.height) == (18_000, 1_500)
    with Image.open(io.BytesIO(sent.data)) as rendition:
        assert rendition.size == (RENDITION_LONG_SIDE, round(1_500 * RENDITION_LONG_SIDE / 18_000))


def test_20_mb_or_more_becomes_a_rendition_under_the_byte_limit():
    data = encoded(gradient(1_200, 900), "PNG")
    data += b"\x00" * (21 * 1024 * 1024 - len(data))  # after IEND: the same image, 21 MiB of bytes

    sent = for_vision(data)

    assert sent.is_rendition and "bytes" in (sent.rendition_reason or "")
    assert inspect_image(sent.data).format == "JPEG"


def test_a_rendition_is_upright_as_the_exif_orientation_says():
    exif = Image.Exif()
    exif[ORIENTATION] = 6  # turn 90 degrees clockwise to display
    data = encoded(gradient(800, 400), "HEIF", exif=exif)
    shown = upright_rgb(Image.open(io.BytesIO(data)))

    sent = for_vision(data)

    with Image.open(io.BytesIO(sent.data)) as rendition:
        assert rendition.size == shown.size == (sent.width, sent.height)


def test_a_jpeg_with_orientation_6_renders_as_portrait():
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    big = gradient(16_100, 400)  # too wide for Vision: a rendition
    data = encoded(big, "JPEG", exif=exif, quality=50)

    sent = for_vision(data)

    assert (sent.width, sent.height) == (400, 16_100)
    with Image.open(io.BytesIO(sent.data)) as rendition:
        width, height = rendition.size
        assert height == RENDITION_LONG_SIDE and width < height
        # The left (yellow) half of the stored picture is its top once turned clockwise.
        assert rendition.convert("RGB").getpixel((width // 2, 5))[2] < 100


def test_a_16_bit_grey_image_is_scaled_to_8_bits_not_clipped_to_white():
    grey = Image.new("I;16", (40, 30), 0x4000)  # a quarter of full scale

    rgb = upright_rgb(grey)

    assert rgb.mode == "RGB" and rgb.getpixel((0, 0)) == (64, 64, 64)


def test_transparency_is_laid_over_white():
    clear = Image.new("RGBA", (20, 20), (0, 0, 0, 0))

    assert upright_rgb(clear).getpixel((0, 0)) == (255, 255, 255)


def test_a_thin_strip_keeps_its_short_side_over_10_px():
    assert rendition_size(16_000, 16) == (11_000, 11)
    with pytest.raises(InputLimitError, match="no reduction"):
        rendition_size(40_000, 16)


def test_what_stays_an_error_is_undecodable_over_budget_or_tiny():
    with pytest.raises(InvalidImageError):
        for_vision(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic")  # declares no size
    with pytest.raises(InputLimitError) as caught:
        for_vision(png_bomb(20_000, 20_000))
    assert caught.value.limit == "image_decode_pixels"
    with pytest.raises(InputLimitError) as caught:
        for_vision(encoded(Image.new("RGB", (10, 10)), "PNG"))
    assert caught.value.limit == "image_min_dimensions"


class RecordingVectorizer:
    """Records the bytes each image call would send to Vision."""

    model_version = "2023-04-15"

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def vectorize_image(self, image: bytes) -> Embedding:
        self.sent.append(image)
        return Embedding(np.ones(4, dtype=np.float32), self.model_version)


def prepared(data: bytes) -> tuple[Document, bytes]:
    vectorizer = RecordingVectorizer()
    item = ImageItem(identity="/photos/x", source="/photos/x", read=lambda: data, fields={})
    result = prepare(item, vectorizer, IndexPin("2023-04-15", 4))  # type: ignore[arg-type]
    assert result.document is not None, result.outcome
    [sent] = vectorizer.sent
    return result.document, sent


def test_indexing_sends_an_image_vision_reads_byte_for_byte():
    data = encoded(gradient(300, 200), "JPEG")

    document, sent = prepared(data)

    assert sent == data
    assert document.fields["content_hash"] == content_hash(data)


def test_indexing_a_heic_sends_a_rendition_and_describes_the_original():
    data = encoded(gradient(300, 200), "HEIF")

    document, sent = prepared(data)

    assert sent != data and inspect_image(sent).format == "JPEG"
    fields = document.fields
    assert fields["content_hash"] == content_hash(data) and fields["size_bytes"] == len(data)
    assert (fields["content_type"], fields["width"], fields["height"]) == ("image/heif", 300, 200)


def test_a_heic_too_small_for_vision_is_refused_by_its_shown_size_not_its_coded_size():
    data = encoded(gradient(40, 8), "HEIF")  # coded padded to 64 x 64, shown 40 x 8

    with pytest.raises(InputLimitError) as caught:
        for_vision(data)

    assert caught.value.limit == "image_min_dimensions" and "40x8" in str(caught.value)
