"""What is sent to Azure AI Vision for an image: the image itself, byte for byte, when Vision
reads it as it is; else a rendition Vision reads (decoded within the pixel budget, upright,
RGB, ``RENDITION_LONG_SIDE`` on its long side, JPEG). The one normalisation step of every path
that vectorizes image bytes. (design: docs/design.md#renditions)
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

from PIL import Image, ImageOps

from indexer.errors import InputLimitError, InvalidImageError
from indexer.limits import MAX_IMAGE_BYTES, MAX_SIDE_EXCLUSIVE, MIN_SIDE_EXCLUSIVE, check_dimensions
from indexer.pixel_budget import PIXEL_BUDGET, ImageHeader, open_within_budget, read_header

log = logging.getLogger(__name__)

RENDITION_LONG_SIDE = 2048
RENDITION_QUALITY = 90
_ORIENTATION_TAG = 0x0112
# Formats whose EXIF Pillow reads at open, without decoding pixels (a PNG's may follow its data).
_EXIF_AT_OPEN = frozenset({"JPEG", "MPO", "WEBP", "TIFF", "HEIF", "AVIF"})


@dataclass(frozen=True)
class VisionImage:
    """The bytes to vectorize, and what the original is: its format and size as displayed."""

    data: bytes
    format: str  # the original's, as Pillow names it
    width: int
    height: int
    rendition_reason: str | None = None  # why ``data`` is a rendition; None: the original itself

    @property
    def is_rendition(self) -> bool:
        return self.rendition_reason is not None

    @property
    def content_type(self) -> str:
        return Image.MIME.get(self.format, "application/octet-stream")


def for_vision(data: bytes, *, budget: int = PIXEL_BUDGET, long_side: int = RENDITION_LONG_SIDE) -> VisionImage:
    """The image to send to Vision for ``data`` (see the module doc). Raises ``InvalidImageError``
    (empty, unreadable) or ``InputLimitError`` (over the decode budget, a side of 10 px or less)."""
    if not data:
        raise InvalidImageError("the image is empty (0 bytes)")
    header = read_header(data)
    if min(header.width, header.height) <= MIN_SIDE_EXCLUSIVE:
        check_dimensions(header.width, header.height)  # raises: too small for the service
    reason = why_vision_refuses(header, len(data))
    if reason is None:
        width, height = _displayed_size(data, header, budget)
        return VisionImage(data, header.format, width, height)
    rendition, width, height = render(data, header, budget=budget, long_side=long_side)
    log.info(
        "sending a %d-byte JPEG rendition of a %s image of %d bytes (%s)",
        len(rendition),
        header.format,
        len(data),
        reason,
    )
    return VisionImage(rendition, header.format, width, height, rendition_reason=reason)


def why_vision_refuses(header: ImageHeader, size: int) -> str | None:
    """Why Azure AI Vision would refuse this image as it is, in words; None if it reads it."""
    if header.format not in _VISION_FORMATS:
        return f"{header.format} is not a format Azure AI Vision reads"
    if size >= MAX_IMAGE_BYTES:
        return f"{size:,} bytes, Azure AI Vision reads under {MAX_IMAGE_BYTES:,}"
    if max(header.width, header.height) >= MAX_SIDE_EXCLUSIVE:
        return f"{header.width}x{header.height} px, Azure AI Vision reads sides under {MAX_SIDE_EXCLUSIVE:,}"
    return None


_VISION_FORMATS = frozenset({"JPEG", "MPO", "PNG", "GIF", "BMP", "WEBP", "ICO", "TIFF"})


def render(data: bytes, header: ImageHeader, *, budget: int, long_side: int) -> tuple[bytes, int, int]:
    """A JPEG of ``data`` that Vision reads, and the original's width and height as displayed."""
    target = rendition_size(header.width, header.height, long_side=long_side)
    with open_within_budget(data, budget=budget, draft_side=min(target)) as image:
        try:
            upright = upright_rgb(image)
        except (OSError, ValueError, SyntaxError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
            raise InvalidImageError(f"the {header.format} image cannot be decoded ({problem})") from None
    # The displayed size: the decoded image's, but a JPEG's draft is scaled, so its header's,
    # turned as the EXIF says. (A HEIC's header is no such measure: its coded size is padded.)
    width, height = upright.size
    if header.format in ("JPEG", "MPO"):
        turned = (upright.width > upright.height) != (header.width > header.height)
        width, height = (header.height, header.width) if turned else (header.width, header.height)
    if min(upright.size) <= MIN_SIDE_EXCLUSIVE:  # a header may claim more than is shown (a HEIC's)
        check_dimensions(*upright.size)
    # reducing_gap: first a cheap reduction by a whole factor, then Lanczos over at most 2x.
    size = rendition_size(*upright.size, long_side=long_side)
    reduced = upright.resize(size, Image.Resampling.LANCZOS, reducing_gap=2.0) if size != upright.size else upright
    out = io.BytesIO()
    reduced.save(out, "JPEG", quality=RENDITION_QUALITY)
    return out.getvalue(), width, height


def rendition_size(width: int, height: int, *, long_side: int = RENDITION_LONG_SIDE) -> tuple[int, int]:
    """``(width, height)`` reduced so the long side is at most ``long_side`` (never enlarged),
    keeping the short side over 10 px; a strip too thin for both is an ``InputLimitError``."""
    long, short = max(width, height), min(width, height)
    scale = min(1.0, long_side / long)
    if short * scale < MIN_SIDE_EXCLUSIVE + 1:
        scale = min(1.0, (MIN_SIDE_EXCLUSIVE + 1) / short)
    if round(long * scale) >= MAX_SIDE_EXCLUSIVE:
        raise InputLimitError(
            f"the image is {width}x{height} pixels: no reduction keeps its short side over {MIN_SIDE_EXCLUSIVE} px "
            f"and its long side under {MAX_SIDE_EXCLUSIVE:,} px",
            limit="image_max_dimensions",
            value=(width, height),
        )
    return max(1, round(width * scale)), max(1, round(height * scale))


def upright_rgb(image: Image.Image) -> Image.Image:
    """``image`` (its first frame), decoded, turned as its EXIF orientation says, in RGB:
    transparency over white, 16- and 32-bit grey scaled to 8 bits (a plain conversion clips
    them to white). ``image`` itself is decoded and turned, and returned as it is when it is
    already RGB: a copy of a 12 MP raster is 36 MB more at the peak."""
    image.load()
    ImageOps.exif_transpose(image, in_place=True)
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        image = image.convert("I").point(lambda value: value * (1 / 256)).convert("L")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


def _displayed_size(data: bytes, header: ImageHeader, budget: int) -> tuple[int, int]:
    """The header's size, turned as the EXIF orientation says where it is read without decoding."""
    orientation = 1
    if header.format in _EXIF_AT_OPEN:
        try:
            with open_within_budget(data, budget=budget, draft_side=1) as image:
                orientation = image.getexif().get(_ORIENTATION_TAG, 1)
        except (InvalidImageError, InputLimitError, OSError, ValueError, SyntaxError):
            orientation = 1  # Vision reads the bytes as they are; the size stays the header's
    if orientation in (5, 6, 7, 8):
        return header.height, header.width
    return header.width, header.height
