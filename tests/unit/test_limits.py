"""The Vision API's input limits (``indexer.limits``): each check at both sides of its bound,
and each error naming the broken limit, the value, and what the limit is."""

from __future__ import annotations

import io
import struct
import warnings
import zlib

import pytest
from PIL import Image

from indexer.errors import InputLimitError, InvalidImageError
from indexer.limits import (
    MAX_IMAGE_BYTES,
    MAX_SIDE_EXCLUSIVE,
    MAX_WORDS,
    MIN_SIDE_EXCLUSIVE,
    MIN_WORDS,
    ImageInfo,
    check_dimensions,
    check_image_size,
    check_text,
    count_words,
    inspect_image,
)


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` (no pixel data is ever decoded)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


def encoded(width: int, height: int, fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (10, 200, 30)).save(out, fmt)
    return out.getvalue()


def test_the_documented_limits():
    assert MAX_IMAGE_BYTES == 20 * 1024 * 1024
    assert (MIN_SIDE_EXCLUSIVE, MAX_SIDE_EXCLUSIVE) == (10, 16_000)
    assert (MIN_WORDS, MAX_WORDS) == (1, 70)


# --- file size ----------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 1000, MAX_IMAGE_BYTES - 1])
def test_sizes_under_20_mib_pass(size):
    assert check_image_size(size) is None


@pytest.mark.parametrize("size", [0, -1])
def test_an_empty_image_is_invalid_not_over_a_limit(size):
    with pytest.raises(InvalidImageError) as caught:
        check_image_size(size)
    assert not isinstance(caught.value, InputLimitError)
    assert str(caught.value) == "the image is empty (0 bytes)"


@pytest.mark.parametrize("size", [MAX_IMAGE_BYTES, MAX_IMAGE_BYTES + 1, 10**12])
def test_20_mib_and_more_is_refused_naming_the_size_and_the_limit(size):
    with pytest.raises(InputLimitError) as caught:
        check_image_size(size)
    assert caught.value.limit == "image_bytes"
    assert caught.value.value == size
    assert str(caught.value) == f"the image is {size:,} bytes; the limit is under 20,971,520 bytes"


def test_a_caller_may_lower_the_size_limit():
    check_image_size(99, max_bytes=100)
    with pytest.raises(InputLimitError) as caught:
        check_image_size(100, max_bytes=100)
    assert caught.value.limit == "image_bytes" and caught.value.value == 100
    assert "the image is 100 bytes; the limit is under 100 bytes" in str(caught.value)


# --- dimensions ---------------------------------------------------------------------------


@pytest.mark.parametrize("width,height", [(11, 11), (11, 15_999), (15_999, 11), (15_999, 15_999), (640, 480)])
def test_dimensions_inside_the_bounds_pass(width, height):
    assert check_dimensions(width, height) is None


@pytest.mark.parametrize("width,height", [(10, 10), (10, 500), (500, 10), (5, 500), (500, 5), (0, 0), (11, 10)])
def test_a_side_of_10_pixels_or_less_is_refused(width, height):
    with pytest.raises(InputLimitError) as caught:
        check_dimensions(width, height)
    assert caught.value.limit == "image_min_dimensions"
    assert caught.value.value == (width, height)
    assert str(caught.value) == f"the image is {width}x{height} pixels; both sides must be larger than 10 pixels"


@pytest.mark.parametrize("width,height", [(16_000, 16_000), (16_000, 20), (20, 16_000), (15_999, 16_000)])
def test_a_side_of_16000_pixels_or_more_is_refused(width, height):
    with pytest.raises(InputLimitError) as caught:
        check_dimensions(width, height)
    assert caught.value.limit == "image_max_dimensions"
    assert caught.value.value == (width, height)
    assert str(caught.value) == f"the image is {width}x{height} pixels; both sides must be smaller than 16,000 pixels"


def test_a_side_too_small_is_reported_before_one_too_large():
    with pytest.raises(InputLimitError) as caught:
        check_dimensions(5, 20_000)
    assert caught.value.limit == "image_min_dimensions"


# --- reading the header -------------------------------------------------------------------


@pytest.mark.parametrize(
    "fmt,content_type", [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("GIF", "image/gif"), ("BMP", "image/bmp")]
)
def test_inspect_image_reads_size_and_format(fmt, content_type):
    info = inspect_image(encoded(64, 32, fmt))
    assert info == ImageInfo(width=64, height=32, format=fmt)
    assert info.content_type == content_type


def test_an_unknown_format_has_the_generic_content_type():
    assert ImageInfo(20, 20, "unknown").content_type == "application/octet-stream"


@pytest.mark.parametrize("width,height", [(5, 500), (500, 5), (10, 11), (11, 10)])
def test_inspect_image_refuses_a_thin_image(width, height):
    with pytest.raises(InputLimitError) as caught:
        inspect_image(encoded(width, height))
    assert caught.value.limit == "image_min_dimensions"
    assert caught.value.value == (width, height)


def test_the_largest_accepted_image_is_read_from_its_header_without_a_warning():
    # 15,999 x 15,999 is over Pillow's default pixel guard; the service takes it, so must we,
    # and without Pillow's DecompressionBombWarning escaping to the caller.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        info = inspect_image(png_header(15_999, 15_999))
    assert (info.width, info.height, info.format) == (15_999, 15_999, "PNG")


def test_a_header_cut_short_is_an_invalid_image_naming_its_format():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is handed to Pillow, so nothing warns
        with pytest.raises(
            InvalidImageError, match=r"^the bytes are not a readable image \(the TIFF header is cut short\)"
        ):
            inspect_image(b"II*\x00" + b"\xff" * 20)


@pytest.mark.parametrize("width,height", [(16_000, 64), (64, 16_000), (16_000, 16_000)])
def test_inspect_image_refuses_a_side_of_16000(width, height):
    with pytest.raises(InputLimitError) as caught:
        inspect_image(png_header(width, height))
    assert caught.value.limit == "image_max_dimensions"
    assert caught.value.value == (width, height)


def test_a_header_claiming_a_decompression_bomb_is_over_the_dimension_limit():
    # Read from the header by indexer.pixel_budget, never by Pillow, whose guard is lower.
    with pytest.raises(InputLimitError) as caught:
        inspect_image(png_header(20_000, 20_000))
    assert caught.value.limit == "image_max_dimensions"
    assert str(caught.value) == "the image is 20000x20000 pixels; both sides must be smaller than 16,000 pixels"


def test_the_size_is_checked_before_the_bytes_are_read():
    data = encoded(64, 64)
    with pytest.raises(InputLimitError) as caught:
        inspect_image(data, max_bytes=len(data))
    assert caught.value.limit == "image_bytes" and caught.value.value == len(data)
    assert inspect_image(data, max_bytes=len(data) + 1).width == 64
    with pytest.raises(InvalidImageError, match=r"^the image is empty \(0 bytes\)$"):
        inspect_image(b"")


@pytest.mark.parametrize("data", [b"\x00\x01 corrupt", b"junk" * 100, b"RIFF\x00\x00\x00\x00WAVE"])
def test_bytes_in_no_known_format_are_an_invalid_image_with_a_helpful_message(data):
    with pytest.raises(InvalidImageError) as caught:
        inspect_image(data)
    assert str(caught.value) == (
        "the bytes are not a readable image: no format read here "
        "(JPEG, PNG, GIF, BMP, WEBP, ICO, TIFF, MPO, HEIC/HEIF, AVIF) was recognised"
    )
    assert caught.value.__context__ is None  # no library's text (a buffer address) is chained


@pytest.mark.parametrize(
    ("head", "name"),
    [(b"8BPS", "Photoshop (PSD)"), (b"%PDF-1.7", "PDF")],
)
def test_a_known_format_not_read_here_is_named(head, name):
    with pytest.raises(InvalidImageError) as caught:
        inspect_image(head + bytes(64))
    assert str(caught.value) == (
        f"the image is {name}, not a format read here (JPEG, PNG, GIF, BMP, WEBP, ICO, TIFF, MPO, HEIC/HEIF, AVIF)"
    )


def test_a_known_format_with_a_broken_header_names_the_problem():
    with pytest.raises(InvalidImageError) as caught:
        inspect_image(b"BM" + bytes(60))  # a BMP header of an unsupported type
    assert not isinstance(caught.value, InputLimitError)
    assert str(caught.value) == "the bytes are not a readable image (the BMP header is of an unknown type (0))"
    with pytest.raises(InvalidImageError, match=r"\(the PNG has no IHDR chunk first\)$"):
        inspect_image(b"\x89PNG\r\n\x1a\n but truncated")


# --- text -------------------------------------------------------------------------------


def test_words_are_separated_by_any_whitespace():
    assert count_words("a cat\ton a\nsofa  ") == 5
    assert count_words("") == 0
    assert count_words(" \t\n") == 0


@pytest.mark.parametrize("text", ["cat", " cat ", "a cat on a sofa", " ".join(["word"] * 70)])
def test_1_to_70_words_pass_unchanged(text):
    assert check_text(text) is text


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_text_without_words_is_refused(text):
    with pytest.raises(InputLimitError) as caught:
        check_text(text)
    assert caught.value.limit == "text_words" and caught.value.value == 0
    assert str(caught.value) == "the text is empty; give 1 to 70 words"


@pytest.mark.parametrize("words", [71, 200])
def test_more_than_70_words_is_refused_naming_the_count(words):
    with pytest.raises(InputLimitError) as caught:
        check_text(" ".join(["word"] * words))
    assert caught.value.limit == "text_words" and caught.value.value == words
    assert str(caught.value) == f"the text has {words} words; the limit is 70 words"


@pytest.mark.parametrize("value", [None, 42, b"a cat", ["a", "cat"]])
def test_text_must_be_a_string(value):
    with pytest.raises(InputLimitError) as caught:
        check_text(value)
    assert caught.value.limit == "text_type"
    assert str(caught.value) == "the text must be a string"
