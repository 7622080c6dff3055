"""Fit an image Azure accepts to what the offline model behind the stand-in can decode.

The model drafts JPEGs (any size is cheap) but decodes other formats at full size within its
own budget, which the stand-in must not pass on as a refusal Azure would not give. So a JPEG,
or any image up to ``PASS_THROUGH_PIXELS``, goes through unchanged; a larger one is decoded
once here (at most ``max_decode_pixels``, 3 bytes each, per concurrent request), turned
upright, reduced to ``WORKING_SIDE`` and handed over as a lossless PNG; beyond the budget,
``StandInLimit`` (a 503). (FIDELITY.md L1, L2; design: docs/design.md#stand-ins)
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps

from indexer.pixel_budget import open_within_budget
from standins.vision.contract import ImageHeader

PASS_THROUGH_PIXELS = 16_000_000
WORKING_SIDE = 2048
# 100 megapixels: 300 MB as RGB, 400 MB as RGBA. Covers 10,000 x 10,000 and the 8,000 x 7,000
# scans and panoramas that a 50-megapixel cap refused; larger non-JPEGs get the 503.
DEFAULT_MAX_DECODE_PIXELS = 100_000_000
_DRAFTABLE = ("JPEG", "MPO")


class StandInLimit(Exception):
    """The input is valid on Azure but beyond what this stand-in will decode."""


def fit_for_model(data: bytes, header: ImageHeader, *, max_decode_pixels: int = DEFAULT_MAX_DECODE_PIXELS) -> bytes:
    """``data`` itself, or a reduced lossless copy the offline model can decode (see above)."""
    pixels = header.width * header.height
    if header.format == "JPEG" or pixels <= PASS_THROUGH_PIXELS:
        return data
    if header.format not in _DRAFTABLE and pixels > max_decode_pixels:
        raise StandInLimit(
            f"the {header.format} image is {header.width:,}x{header.height:,} = {pixels:,} pixels, and the stand-in "
            f"decodes at most {max_decode_pixels:,} pixels of a non-JPEG image (serve-vision --max-decode-megapixels)."
        )
    # An MPO is drafted (libjpeg scales while decoding); anything else was checked above against
    # the budget, which open_within_budget holds again from the header before Pillow opens it.
    with open_within_budget(data, budget=max_decode_pixels, draft_side=WORKING_SIDE) as image:
        # thumbnail() decodes and reduces in place: the full raster is held once, and only until
        # it is reduced.
        image.thumbnail((WORKING_SIDE, WORKING_SIDE), Image.Resampling.BICUBIC, reducing_gap=3.0)
        upright = ImageOps.exif_transpose(image)  # on the small copy, before EXIF is dropped
    if upright.mode in ("I", "F"):  # 32-bit integer or float samples: scale to 8 bits by the peak
        samples = np.asarray(upright, dtype=np.float32)
        peak = max(float(samples.max()), 1.0)
        upright = Image.fromarray(np.clip(samples / peak * 255.0, 0, 255).astype(np.uint8))
    if upright.mode not in ("1", "L", "LA", "RGB", "RGBA", "P", "I;16"):
        upright = upright.convert("RGBA" if "A" in upright.getbands() else "RGB")
    out = io.BytesIO()
    upright.save(out, "PNG", compress_level=1)
    return out.getvalue()
