"""The decode budget (``indexer.pixel_budget``): sizes read from each format's header without
decoding, and images over the budget refused before Pillow sees them, cheaply."""

from __future__ import annotations

import io
import struct
import time
import tracemalloc

import pytest
from PIL import Image

from indexer.entrypoints.document_images import DocumentImage, thumbnail
from indexer.errors import InputLimitError, InvalidImageError
from indexer.limits import inspect_image
from indexer.pixel_budget import PIXEL_BUDGET, ImageHeader, known_format, open_within_budget, read_header
from indexer.vectorizers.offline.decode import decode_image
from tests.fixtures.bad_images import ico_bomb, jpeg_claiming, png_bomb


def saved(fmt: str, size: tuple[int, int] = (37, 23), **options: object) -> bytes:
    image = Image.new("RGB", size, (200, 60, 30))
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


SAMPLES = {
    "JPEG": lambda: saved("JPEG"),
    "progressive JPEG": lambda: saved("JPEG", progressive=True),
    "MPO": lambda: saved("MPO", save_all=True, append_images=[Image.new("RGB", (37, 23))]),
    "PNG": lambda: saved("PNG"),
    "GIF": lambda: saved("GIF"),
    "BMP": lambda: saved("BMP"),
    "lossy WEBP": lambda: saved("WEBP", quality=80),
    "lossless WEBP": lambda: saved("WEBP", lossless=True),
    "extended WEBP": lambda: saved("WEBP", exif=Image.Exif().tobytes()),
    "ICO": lambda: saved("ICO", sizes=[(37, 23)]),
    "ICO with a BMP inside": lambda: saved("ICO", sizes=[(37, 23)], bitmap_format="bmp"),
    "TIFF": lambda: saved("TIFF"),
    "big-endian TIFF": lambda: _big_endian_tiff(),
}


def _big_endian_tiff() -> bytes:
    # Pillow writes little-endian TIFF by default; a minimal big-endian one by hand.
    entries = [(256, 3, 1, 37 << 16), (257, 4, 1, 23)]
    ifd = struct.pack(">H", len(entries)) + b"".join(struct.pack(">HHII", *entry) for entry in entries)
    return b"MM\x00*" + struct.pack(">I", 8) + ifd + b"\x00\x00\x00\x00"


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_the_header_gives_the_size_pillow_gives(name):
    data = SAMPLES[name]()
    header = read_header(data)
    assert (header.width, header.height) == (37, 23)
    if name != "big-endian TIFF":
        with Image.open(io.BytesIO(data)) as image:
            assert (header.format, image.size) == (image.format, (37, 23))
    assert known_format(data) in ("JPEG", "MPO", "PNG", "GIF", "BMP", "WEBP", "ICO", "TIFF")


def test_a_gif_frame_reaching_past_the_screen_counts_whole():
    data = bytearray(saved("GIF"))
    descriptor = data.index(b"\x2c", 13)
    data[descriptor + 5 : descriptor + 9] = struct.pack("<HH", 9000, 9000)  # the frame's own size
    assert read_header(bytes(data)) == ImageHeader("GIF", 9000, 9000)


def test_an_ico_counts_its_largest_embedded_image_not_its_directory():
    assert read_header(ico_bomb(12_000)) == ImageHeader("ICO", 12_000, 12_000)
    # A BMP inside an ICO states twice its height (the image and its mask).
    dib = struct.pack("<Iii", 40, 9_000, 18_000) + bytes(28)
    icon = struct.pack("<HHH", 0, 1, 1) + struct.pack("<BBBBHHII", 16, 16, 0, 0, 1, 32, len(dib), 22) + dib
    assert read_header(icon) == ImageHeader("ICO", 9_000, 9_000)


@pytest.mark.parametrize(
    "data,problem",
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "the JPEG header is cut short"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00", "the PNG header is cut short"),
        (b"\x00\x00\x01\x00\x01\x00" + bytes(16), "an ICO entry points into the directory"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 " + bytes(20), "VP8 frame is broken"),
        (b"II*\x00\x08\x00\x00\x00\x00\x00", "the TIFF names no width or height"),
    ],
)
def test_a_broken_header_is_an_invalid_image_naming_the_problem(data, problem):
    with pytest.raises(InvalidImageError, match="^the bytes are not a readable image") as caught:
        read_header(data)
    assert problem in str(caught.value)


def test_the_ico_bomb_is_refused_before_anything_is_decoded():
    bomb = ico_bomb(12_000)
    assert len(bomb) < 600_000
    tracemalloc.start()
    started = time.perf_counter()
    try:
        for decode in (
            lambda: open_within_budget(bomb),
            lambda: decode_image(bomb, min_side=224),
            lambda: thumbnail(DocumentImage("k", bomb, ""), 320),
        ):
            with pytest.raises(InputLimitError) as caught:
                decode()
            assert caught.value.limit == "image_decode_pixels"
            assert "12,000x12,000" in str(caught.value)
        # The header check alone (what is sent to Azure, which takes sides under 16,000) passes.
        assert inspect_image(bomb).format == "ICO"
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < 0.5
    assert peak < 4 * 1024 * 1024  # decoded, it would be 144 million pixels


def test_pillows_guard_is_at_the_budget():
    assert Image.MAX_IMAGE_PIXELS == PIXEL_BUDGET


def test_an_image_at_the_budget_opens_and_one_over_it_does_not():
    side = int(PIXEL_BUDGET**0.5)
    with open_within_budget(png_bomb(side, side)) as image:
        assert image.size == (side, side)
    with pytest.raises(InputLimitError):
        open_within_budget(png_bomb(side + 1, side + 1))
    # The caller's own budget wins.
    with pytest.raises(InputLimitError, match="37x23 pixels; images are decoded here up to 800 pixels"):
        open_within_budget(saved("PNG"), budget=800)


def test_a_jpeg_of_any_size_is_held_to_the_budget_at_its_drafted_size():
    huge = jpeg_claiming(15_000, 15_000, cut=False)
    with open_within_budget(huge, draft_side=320) as image:
        assert max(image.size) <= 15_000 // 8 + 1  # libjpeg scales by up to 1/8 while decoding
    with pytest.raises(InputLimitError):
        open_within_budget(huge)  # decoded at full size: 225 million pixels


def test_a_heic_opens_in_a_fresh_process_that_never_imported_pillow_heif_itself(tmp_path):
    # The HEIF opener is registered on the first HEIC, not at import (the Function's start-up
    # path imports this module); a process of its own shows the product registers it.
    import subprocess
    import sys

    import pillow_heif

    heic = tmp_path / "photo.heic"
    pillow_heif.from_pillow(Image.new("RGB", (48, 32), (10, 200, 30))).save(heic)
    script = (
        "import sys; from indexer.pixel_budget import open_within_budget;"
        "assert 'pillow_heif' not in sys.modules;"
        "print(*open_within_budget(open(sys.argv[1], 'rb').read()).convert('RGB').size)"
    )
    done = subprocess.run([sys.executable, "-c", script, str(heic)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    width, height = map(int, done.stdout.split())
    assert width >= 48 and height >= 32  # a HEIC's coded size may be padded past the picture
