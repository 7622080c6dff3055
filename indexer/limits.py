"""The Vision API's documented input limits, checked before any call (the Vision client) and by
the offline vectorizer, with errors that name the broken limit.

Azure AI Vision multimodal embeddings take an image file < 20 MB with sides > 10 and < 16,000
pixels, and a text of 1 to 70 words. How the service counts words is undocumented, so the
70-word limit is checked here for text written with spaces between words and left to the
service for scripts without them (Chinese, Japanese, Thai, ...) unless ``word_check="strict"``;
``"service"`` never checks it. An empty text is refused in every mode.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from PIL import Image

from indexer.errors import InputLimitError, InvalidImageError
from indexer.pixel_budget import container_format, read_header

MAX_IMAGE_BYTES = 20 * 1024 * 1024  # "< 20 MB": 20 MiB itself is refused
# The largest original read (a file, a blob, an example image): larger images than Vision takes
# are sent as renditions (``indexer.renditions``), so the bound is memory's, not the service's:
# with the decode budget's raster, 64 MiB of bytes per invocation fits the Function's instance.
MAX_SOURCE_BYTES = 64 * 1024 * 1024
MIN_SIDE_EXCLUSIVE = 10
MAX_SIDE_EXCLUSIVE = 16_000
MIN_WORDS = 1
MAX_WORDS = 70


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    format: str  # Pillow's format name, e.g. "JPEG"

    @property
    def content_type(self) -> str:
        return Image.MIME.get(self.format, "application/octet-stream")


def check_image_size(size: int, *, max_bytes: int = MAX_IMAGE_BYTES) -> None:
    if size <= 0:
        raise InvalidImageError("the image is empty (0 bytes)")
    if size >= max_bytes:
        raise InputLimitError(
            f"the image is {size:,} bytes; the limit is under {max_bytes:,} bytes",
            limit="image_bytes",
            value=size,
        )


def inspect_image(data: bytes, *, max_bytes: int = MAX_IMAGE_BYTES) -> ImageInfo:
    """Check size and dimensions from the header only: nothing is decoded here, not even by
    Pillow (which decodes an ICO's embedded image when opening it), so a decompression bomb
    costs nothing. Whoever decodes applies ``indexer.pixel_budget``. Raises
    ``InvalidImageError`` or ``InputLimitError``."""
    check_image_size(len(data), max_bytes=max_bytes)
    name = unsupported_format(data[:SNIFF_BYTES])
    if name:  # named, as `index` and `upload` name it
        raise InvalidImageError(f"the image is {name}, not a format read here ({READ_FORMATS})")
    header = read_header(data)
    check_dimensions(header.width, header.height)
    return ImageInfo(width=header.width, height=header.height, format=header.format)


def check_dimensions(width: int, height: int) -> None:
    if width <= MIN_SIDE_EXCLUSIVE or height <= MIN_SIDE_EXCLUSIVE:
        raise InputLimitError(
            f"the image is {width}x{height} pixels; both sides must be larger than {MIN_SIDE_EXCLUSIVE} pixels",
            limit="image_min_dimensions",
            value=(width, height),
        )
    if width >= MAX_SIDE_EXCLUSIVE or height >= MAX_SIDE_EXCLUSIVE:
        raise InputLimitError(
            f"the image is {width}x{height} pixels; both sides must be smaller than {MAX_SIDE_EXCLUSIVE:,} pixels",
            limit="image_max_dimensions",
            value=(width, height),
        )


WordCheck = Literal["auto", "strict", "service"]
WORD_CHECKS: tuple[str, ...] = ("auto", "strict", "service")

# Scripts written without spaces between words: Han (CJK ideographs and their extensions),
# Hiragana, Katakana (and the half-width forms), Thai, Lao, Tibetan, Myanmar, Khmer.
_UNSPACED_SCRIPTS = re.compile(
    "[\u0e00-\u0eff\u0f00-\u0fff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u31f0-\u31ff"
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f\U00020000-\U0003134f]"
)


def count_words(text: str) -> int:
    return len(text.split())


def words_are_spaced(text: str) -> bool:
    """Whether the text has no letters of a script written without spaces between words,
    so that counting by whitespace counts its words."""
    return _UNSPACED_SCRIPTS.search(text) is None


def check_text(text: str, *, word_check: WordCheck = "auto") -> str:
    """Return the text unchanged if it has 1 to 70 words, else raise ``InputLimitError``.

    ``word_check`` says where the upper limit is checked (see the module doc): ``"auto"``
    for text written with spaces, ``"strict"`` always, ``"service"`` never."""
    if not isinstance(text, str):
        raise InputLimitError("the text must be a string", limit="text_type")
    if word_check not in WORD_CHECKS:
        raise ValueError(f"word_check must be one of {', '.join(WORD_CHECKS)}, got {word_check!r}")
    words = count_words(text)
    if words < MIN_WORDS:
        raise InputLimitError("the text is empty; give 1 to 70 words", limit="text_words", value=0)
    checked_here = word_check == "strict" or (word_check == "auto" and words_are_spaced(text))
    if words > MAX_WORDS and checked_here:
        raise InputLimitError(
            f"the text has {words} words; the limit is {MAX_WORDS} words", limit="text_words", value=words
        )
    return text


# --- what the bytes are -------------------------------------------------------------------

# The formats the service reads, by their signatures (the first bytes of the file), with the
# content type each is indexed under. MPO is a JPEG stream, so it sniffs as JPEG here. HEIC/HEIF
# and AVIF, which are sent as renditions, are named by their ``ftyp`` box (``container_format``).
_SIGNATURES: tuple[tuple[bytes, int, str], ...] = (
    (b"\xff\xd8\xff", 0, "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", 0, "image/png"),
    (b"GIF87a", 0, "image/gif"),
    (b"GIF89a", 0, "image/gif"),
    (b"BM", 0, "image/bmp"),
    (b"WEBP", 8, "image/webp"),  # after "RIFF" and the chunk size
    (b"\x00\x00\x01\x00", 0, "image/x-icon"),
    (b"II*\x00", 0, "image/tiff"),
    (b"MM\x00*", 0, "image/tiff"),
)
# Common image formats the service does not read, named so a skipped file says why.
_UNSUPPORTED: tuple[tuple[bytes, int, str], ...] = (
    (b"\x00\x00\x00\x0cjP  ", 0, "JPEG 2000"),
    (b"8BPS", 0, "Photoshop (PSD)"),
    (b"%PDF", 0, "PDF"),
    (b"<svg", 0, "SVG"),
)
SNIFF_BYTES = 64  # an ISOBMFF file lists its compatible brands after the first 16 bytes
_CONTAINER_TYPES = {"HEIF": "image/heif", "AVIF": "image/avif"}


def sniff_content_type(head: bytes) -> str | None:
    """The content type of an image in a format read here (the service's, HEIC/HEIF, AVIF),
    from its first ``SNIFF_BYTES`` bytes; None for anything else."""
    container = container_format(head)
    if container is not None:
        return _CONTAINER_TYPES[container]
    for signature, offset, content_type in _SIGNATURES:
        if head[offset : offset + len(signature)] == signature:
            if content_type == "image/webp" and not head.startswith(b"RIFF"):
                continue
            return content_type
    return None


def unsupported_format(head: bytes) -> str | None:
    """The name of a common format not read here (PSD, PDF, ...) when ``head`` (the first
    ``SNIFF_BYTES`` bytes) starts one; None otherwise."""
    for signature, offset, name in _UNSUPPORTED:
        if head[offset : offset + len(signature)] == signature:
            return name
    return None


def unreadable_format(head: bytes) -> str:
    """Why bytes that ``sniff_content_type`` refuses are no image read here, in words."""
    name = unsupported_format(head)
    if name:
        return f"{name} is not a format read here ({READ_FORMATS})"
    if not head:
        return "the file is empty"
    return f"not a readable image: no format read here ({READ_FORMATS}) was recognised"


READ_FORMATS = "JPEG, PNG, GIF, BMP, WEBP, ICO, TIFF, MPO, HEIC/HEIF, AVIF"
