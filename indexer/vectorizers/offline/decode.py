"""Decode image bytes into a small RGB picture with bounded memory.

The classifier needs a few hundred pixels a side, and a full-size 16,000 x 16,000 image takes
~770 MB. JPEG is decoded with ``Image.draft()`` (libjpeg scales while decoding); other formats
are decoded at full size, so ``indexer.pixel_budget`` refuses those above ``max_decode_pixels``
from their header, before Pillow opens them (``InputLimitError`` naming ``image_decode_pixels``).
(design: docs/design.md#the-offline-models)
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from indexer.errors import InvalidImageError
from indexer.pixel_budget import PIXEL_BUDGET, open_within_budget

# The project's one decode budget (indexer.pixel_budget): every camera photo and most panoramas
# (e.g. 16,000 x 3,000) at ~200 MB (RGBA). JPEGs are checked after draft scaling.
MAX_DECODE_PIXELS = PIXEL_BUDGET


def decode_image(
    data: bytes, *, min_side: int, max_decode_pixels: int = MAX_DECODE_PIXELS, draft: bool = True
) -> Image.Image:
    """Return an RGB image, upright per EXIF, whose shorter side is about ``min_side``.

    The result is never smaller than ``min_side`` on its shorter side unless the source
    is; it is reduced (cheaply, with ``reduce()`` first) when the source is larger.
    Raises ``InvalidImageError`` for bytes Pillow cannot decode and ``InputLimitError``
    when decoding would exceed ``max_decode_pixels``.

    ``draft=False`` decodes JPEGs at full size too (then the pixel budget applies to them):
    the reference that bench/bench_model_throughput.py measures draft mode against.
    """
    image = open_within_budget(data, budget=max_decode_pixels, draft_side=min_side if draft else None)
    try:
        image.load()
    except Exception as exc:  # noqa: BLE001 - any decoder failure means "not a readable image", never a crash
        raise InvalidImageError(f"the bytes are not a readable image ({type(exc).__name__}: {exc})") from None

    orientation = _exif_orientation(image)
    if image.mode not in ("RGB", "RGBA", "L", "LA"):
        image = to_rgb(image)  # palette, 16-bit, CMYK...: normalise first so resizing is well defined
    image = _shrink(image, min_side)
    if orientation in _ORIENTATION_FIXES:
        image = image.transpose(_ORIENTATION_FIXES[orientation])
    return to_rgb(image)


# EXIF orientation tag (0x0112) value -> the transpose that shows the picture upright.
_ORIENTATION_FIXES = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _exif_orientation(image: Image.Image) -> int:
    """Read the orientation before any resize drops the EXIF block; 1 (upright) if absent
    or unreadable, since a broken EXIF block should not make a good picture unusable."""
    try:
        return int(image.getexif().get(0x0112, 1))
    except Exception:  # noqa: BLE001
        return 1


def _shrink(image: Image.Image, min_side: int) -> Image.Image:
    width, height = image.size
    scale = min_side / min(width, height)
    if scale >= 1:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    # reducing_gap: box-reduce by an integer factor first (cheap), then resample the rest.
    return image.resize(size, Image.Resampling.BICUBIC, reducing_gap=3.0)


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB; transparency is flattened onto white (as a
    viewer shows a transparent PNG), not onto whatever colour hides under alpha 0."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        pixels = np.asarray(image, dtype=np.float32)
        peak = 65535.0 if image.mode.startswith("I;16") else max(float(pixels.max()), 1.0)
        grey = np.clip(pixels / peak * 255.0, 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, (255, 255, 255))
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return image.convert("RGB")
