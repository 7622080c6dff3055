"""What the Vision stand-in enforces, written from Microsoft's documentation, not from the
client's code (the rule of this package: a client's mistake must not be mirrored here).

Sources: the how-to "Do image retrieval using multimodal embeddings (version 4.0)" and its
concept page "Multimodal embeddings" (paths, parameters, bodies, limits); the Image Analysis
4.0 input requirements (formats); the REST reference of ``retrieval:vectorizeImage`` /
``retrieval:vectorizeText``; live answers quoted in public issues (see ``answers.py``). Each
rule, its source and its test are listed in ``standins/FIDELITY.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

from indexer.errors import InvalidImageError
from indexer.pixel_budget import known_format, read_header
from standins.vision import answers
from standins.vision.answers import ErrorAnswer

IMAGE_PATH = "/computervision/retrieval:vectorizeImage"
TEXT_PATH = "/computervision/retrieval:vectorizeText"

GA_API_VERSION = "2024-02-01"
PREVIEW_API_VERSION = "2023-02-01-preview"
# The GA version names its model parameter ``model-version`` (the seed's curl commands); the
# 2023 preview was called with ``modelVersion``, and ``latest`` there meant 2022-04-11 (the
# seed's sample answers report that version).
MODEL_PARAMETER = {GA_API_VERSION: "model-version", PREVIEW_API_VERSION: "modelVersion"}
PREVIEW_LATEST_MODEL = "2022-04-11"

KEY_HEADER = "ocp-apim-subscription-key"
OCTET_STREAM = "application/octet-stream"
JSON = "application/json"

# "The file size of the image must be less than 20 megabytes (MB)"; "greater than 10 x 10
# pixels and less than 16,000 x 16,000 pixels"; text "between 1 and 70 words".
IMAGE_BYTES_LIMIT = 20 * 1024 * 1024
SIDE_ABOVE = 10
SIDE_BELOW = 16_000
WORDS_MIN, WORDS_MAX = 1, 70
# "The image must be presented in JPEG, PNG, GIF, BMP, WEBP, ICO, TIFF, or MPO format", as
# Pillow names them. Anything else Pillow can read (TGA, PPM, PCX, SGI, DDS, QOI, JPEG 2000,
# XBM, ...) is refused as the service refuses an image it cannot read.
FORMATS = frozenset({"JPEG", "PNG", "GIF", "BMP", "WEBP", "ICO", "TIFF", "MPO"})


class Refused(Exception):
    """Carries the Azure error a request is answered with."""

    def __init__(self, error: ErrorAnswer) -> None:
        super().__init__(error.message)
        self.error = error


@dataclass(frozen=True)
class ImageHeader:
    width: int
    height: int
    format: str  # Pillow's name, one of FORMATS


def check_image_bytes(size: int) -> None:
    """Zero bytes, or 20 MB and more: Azure's size answer (no inner code)."""
    if size <= 0 or size >= IMAGE_BYTES_LIMIT:
        raise Refused(answers.image_bytes_not_allowed())


def check_image(data: bytes) -> ImageHeader:
    """Refuse what the service refuses before it runs the model: an empty or oversized body,
    bytes that are no image, formats outside the documented list, and sides outside
    (10, 16,000) pixels. Reads the header only."""
    check_image_bytes(len(data))
    # The header is read without Pillow (indexer.pixel_budget), which would decode an ICO's
    # embedded image while opening it: a 560 KB icon could take 550 MB before any check.
    if known_format(data) is None:
        raise Refused(
            answers.invalid_image_format(
                f"Input data is not a valid image: this format is not supported; the supported formats are "
                f"{', '.join(sorted(FORMATS))}."
            )
        )
    try:
        header = read_header(data)
    except InvalidImageError:
        raise Refused(answers.invalid_image_format()) from None
    width, height, fmt = header.width, header.height, header.format
    if min(width, height) <= SIDE_ABOVE or max(width, height) >= SIDE_BELOW:
        raise Refused(
            answers.invalid_image_size(
                f"The image is {width}x{height} pixels; both sides must be larger than {SIDE_ABOVE} and smaller than "
                f"{SIDE_BELOW:,} pixels."
            )
        )
    return ImageHeader(width, height, fmt)


def check_text(text: object) -> str:
    """1 to 70 words, counted between whitespace: the documented rule read literally, and the
    lenient reading where it is undocumented (a CJK sentence without spaces is one "word"), so
    the stand-in never refuses a text Azure might accept."""
    if not isinstance(text, str):
        raise Refused(answers.invalid_text("'text' must be a string of 1 to 70 words."))
    words = len(text.split())
    if not WORDS_MIN <= words <= WORDS_MAX:
        raise Refused(answers.invalid_text(f"The text has {words} words; it must have {WORDS_MIN} to {WORDS_MAX}."))
    return text
