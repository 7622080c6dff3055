"""What the Vision stand-in enforces, written from Microsoft's documentation, not from the
client's code (the rule of this package: a client's mistake must not be mirrored here).

Sources: the how-to "Do image retrieval using multimodal embeddings (version 4.0)" and its
concept page "Multimodal embeddings" (paths, parameters, bodies, limits); the REST reference of
``retrieval:vectorizeImage`` / ``retrieval:vectorizeText``; live answers quoted in public issues
(see ``answers.py``).
"""

from __future__ import annotations

import io
import warnings

from PIL import Image, UnidentifiedImageError

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


class Refused(Exception):
    """Carries the Azure error a request is answered with."""

    def __init__(self, error: ErrorAnswer) -> None:
        super().__init__(error.message)
        self.error = error


def check_image_bytes(size: int) -> None:
    if size >= IMAGE_BYTES_LIMIT:
        raise Refused(
            answers.invalid_image_size(
                f"The image is {size:,} bytes or more; the limit is under {IMAGE_BYTES_LIMIT:,} bytes (20 MB)."
            )
        )


def check_image(data: bytes) -> None:
    """Refuse what the service refuses before it runs the model: an empty or oversized body,
    bytes that are no image, and sides outside (10, 16,000) pixels. Reads the header only."""
    if not data:
        raise Refused(answers.invalid_image_format("Input data is not a valid image: the image is empty."))
    check_image_bytes(len(data))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
    except Image.DecompressionBombError as exc:
        raise Refused(answers.invalid_image_dimension(f"The image is too large to decode: {exc}")) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise Refused(answers.invalid_image_format()) from None
    if min(width, height) <= SIDE_ABOVE or max(width, height) >= SIDE_BELOW:
        raise Refused(
            answers.invalid_image_dimension(
                f"The image is {width}x{height} pixels; both sides must be larger than {SIDE_ABOVE} and smaller than "
                f"{SIDE_BELOW:,} pixels."
            )
        )


def check_text(text: object) -> str:
    if not isinstance(text, str):
        raise Refused(answers.invalid_text("'text' must be a string of 1 to 70 words."))
    words = len(text.split())
    if not WORDS_MIN <= words <= WORDS_MAX:
        raise Refused(answers.invalid_text(f"The text has {words} words; it must have {WORDS_MIN} to {WORDS_MAX}."))
    return text
