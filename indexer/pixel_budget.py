"""How many pixels one image may take once decoded here, decided from its header before any
pixel is decoded. ``read_header`` reads every format Vision reads, and HEIC/HEIF and AVIF,
without Pillow (which decodes an ICO's embedded image inside ``Image.open``);
``open_within_budget`` is the one way this project opens an image to decode it, and refuses an
image over ``PIXEL_BUDGET`` (50 MP) first. (design: docs/design.md#the-pixel-budget)
"""

from __future__ import annotations

import functools
import io
import struct
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

from PIL import Image, JpegImagePlugin

from indexer.errors import InputLimitError, InvalidImageError

PIXEL_BUDGET = 50_000_000

# Pillow's own guard stays at the budget, never above it: Pillow warns past MAX_IMAGE_PIXELS and
# refuses past twice that. Ours refuses first, so Pillow's is the second line for any decode
# that does not come through open_within_budget.
Image.MAX_IMAGE_PIXELS = PIXEL_BUDGET


@dataclass(frozen=True)
class ImageHeader:
    """What an image's header says: its format (as Pillow names it) and size in pixels."""

    format: str
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


def check_pixel_budget(header: ImageHeader, *, budget: int = PIXEL_BUDGET) -> None:
    """Refuse, before decoding, an image that would take more than ``budget`` pixels."""
    if header.pixels > budget:
        raise InputLimitError(
            f"the {header.format} image is {header.width:,}x{header.height:,} pixels; images are decoded here up to "
            f"{budget:,} pixels (limit 'image_decode_pixels'); a JPEG of any size is decoded scaled down, so send it "
            f"as JPEG or smaller",
            limit="image_decode_pixels",
            value=(header.width, header.height),
        )


@functools.cache
def _register_heif_opener() -> None:
    """HEIC/HEIF (the iPhone's format) opens through pillow-heif (AVIF is Pillow's own),
    registered on the first such image, so the Function's start-up never imports it."""
    import pillow_heif

    pillow_heif.register_heif_opener()


def open_within_budget(data: bytes, *, budget: int = PIXEL_BUDGET, draft_side: int | None = None) -> Image.Image:
    """Pillow's image of ``data``, not yet decoded, once its header shows it fits ``budget``.

    ``draft_side``: a JPEG (or MPO, whose first picture is a JPEG) is to be decoded scaled down
    by libjpeg (``Image.draft``) to no less than this many pixels a side; the budget then holds
    for the scaled size, so a JPEG of any size costs little. Raises ``InvalidImageError`` or
    ``InputLimitError``."""
    header = read_header(data)
    if header.format == "HEIF":
        _register_heif_opener()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the budget replaces it
        try:
            if header.format in ("JPEG", "MPO") and draft_side is not None:
                # The plugin class directly: Image.open would apply Pillow's guard to the full size.
                image: Image.Image = JpegImagePlugin.JpegImageFile(io.BytesIO(data))
                image.draft("RGB", (draft_side, draft_side))
                check_pixel_budget(ImageHeader(header.format, *image.size), budget=budget)
                return image
            check_pixel_budget(header, budget=budget)
            formats = ("JPEG", "MPO") if header.format in ("JPEG", "MPO") else (header.format,)
            return Image.open(io.BytesIO(data), formats=formats)
        except InputLimitError:
            raise
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            raise InvalidImageError(f"the bytes are not a readable image ({type(exc).__name__}: {exc})") from None


class _Truncated(Exception):
    pass


def _unpack(fmt: str, data: bytes, offset: int) -> tuple[int, ...]:
    if offset < 0 or offset + struct.calcsize(fmt) > len(data):
        raise _Truncated
    return struct.unpack_from(fmt, data, offset)


def known_format(data: bytes) -> str | None:
    """The format the first bytes of ``data`` announce, if it is one the service reads
    (Azure AI Vision: HEIC and AVIF are not among them, see ``container_format``)."""
    for signature, name, _reader in _READERS:
        if signature and data.startswith(signature) and (signature != b"RIFF" or data[8:12] == b"WEBP"):
            return name
    return None


def read_header(data: bytes) -> ImageHeader:
    """The format and size the header of ``data`` claims, without decoding any pixel.
    Raises ``InvalidImageError`` naming the problem for bytes in no format the service reads
    or with a header cut short or broken."""
    name = known_format(data) or container_format(data)
    for signature, reader_name, reader in _READERS:
        if reader_name == name and (data.startswith(signature) or not signature):
            try:
                header = reader(data)
            except _Truncated:
                problem = f"the {name} header is cut short"
                raise InvalidImageError(f"the bytes are not a readable image ({problem})") from None
            if header.width <= 0 or header.height <= 0:
                problem = f"the {header.format} header claims no size"
                raise InvalidImageError(f"the bytes are not a readable image ({problem})")
            return header
    raise InvalidImageError(
        "the bytes are not a readable image: no format read here "
        "(JPEG, PNG, GIF, BMP, WEBP, ICO, TIFF, MPO, HEIC/HEIF, AVIF) was recognised"
    )


def _png(data: bytes) -> ImageHeader:
    if data[12:16] != b"IHDR":
        raise InvalidImageError("the bytes are not a readable image (the PNG has no IHDR chunk first)")
    width, height = _unpack(">II", data, 16)
    return ImageHeader("PNG", width, height)


def _jpeg(data: bytes) -> ImageHeader:
    offset, multi_picture = 2, False
    while True:
        (marker,) = _unpack(">H", data, offset)
        if marker >> 8 != 0xFF:
            raise InvalidImageError("the bytes are not a readable image (the JPEG's markers are broken)")
        kind = marker & 0xFF
        if kind == 0xFF:  # fill byte before a marker
            offset += 1
            continue
        if kind == 0x01 or 0xD0 <= kind <= 0xD7:  # markers without a length
            offset += 2
            continue
        (length,) = _unpack(">H", data, offset + 2)
        if kind == 0xE2 and data[offset + 4 : offset + 8] == b"MPF\x00":
            multi_picture = True  # Pillow names such a file MPO
        if kind in _JPEG_FRAMES:
            height, width = _unpack(">HH", data, offset + 5)
            return ImageHeader("MPO" if multi_picture else "JPEG", width, height)
        if kind == 0xDA or length < 2:  # scan data before any frame header
            raise InvalidImageError("the bytes are not a readable image (the JPEG has no frame header)")
        offset += 2 + length


# Start-of-frame markers (every coding: baseline, progressive, lossless, arithmetic).
_JPEG_FRAMES = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


def _gif(data: bytes) -> ImageHeader:
    width, height, flags = _unpack("<HHB", data, 6)
    offset = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    # The first frame may reach past the logical screen; Pillow then grows the image to hold it.
    while True:
        (block,) = _unpack("B", data, offset)
        if block == 0x21:  # an extension: label, then sub-blocks up to an empty one
            offset += 2
            while True:
                (size,) = _unpack("B", data, offset)
                offset += 1 + size
                if size == 0:
                    break
            continue
        if block == 0x2C:
            left, top, frame_width, frame_height = _unpack("<HHHH", data, offset + 1)
            return ImageHeader("GIF", max(width, left + frame_width), max(height, top + frame_height))
        raise InvalidImageError("the bytes are not a readable image (the GIF holds no image)")


def _bmp(data: bytes) -> ImageHeader:
    return _dib("BMP", data, 14)


def _dib(fmt: str, data: bytes, offset: int) -> ImageHeader:
    (size,) = _unpack("<I", data, offset)
    if size == 12:  # OS/2 1.x
        width, height = _unpack("<HH", data, offset + 4)
    elif size in (16, 40, 52, 56, 64, 108, 124):  # OS/2 2.x, Windows 3 to 5
        width, height = _unpack("<ii", data, offset + 4)
    else:
        raise InvalidImageError(f"the bytes are not a readable image (the {fmt} header is of an unknown type ({size}))")
    return ImageHeader(fmt, abs(width), abs(height))


def _webp(data: bytes) -> ImageHeader:
    chunk = data[12:16]
    if chunk == b"VP8 ":
        if data[23:26] != b"\x9d\x01\x2a":
            raise InvalidImageError("the bytes are not a readable image (the WEBP's VP8 frame is broken)")
        width, height = _unpack("<HH", data, 26)
        return ImageHeader("WEBP", width & 0x3FFF, height & 0x3FFF)
    if chunk == b"VP8L":
        (bits,) = _unpack("<I", data, 21)
        return ImageHeader("WEBP", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8X":
        (width_low, width_high, height_low, height_high) = _unpack("<HBHB", data, 24)
        return ImageHeader("WEBP", (width_low | width_high << 16) + 1, (height_low | height_high << 16) + 1)
    raise InvalidImageError(f"the bytes are not a readable image (the WEBP chunk {chunk!r} is unknown)")


def _ico(data: bytes) -> ImageHeader:
    (count,) = _unpack("<H", data, 4)
    if count == 0:
        raise InvalidImageError("the bytes are not a readable image (the ICO holds no image)")
    width = height = 0
    for entry in range(count):
        listed_width, listed_height = _unpack("BB", data, 6 + 16 * entry)
        (offset,) = _unpack("<I", data, 6 + 16 * entry + 12)
        if offset < 6 + 16 * count:
            raise InvalidImageError("the bytes are not a readable image (an ICO entry points into the directory)")
        # What Pillow decodes is the embedded image, whatever size the directory lists.
        if data[offset : offset + 8] == b"\x89PNG\r\n\x1a\n":
            embedded = _png(data[offset : offset + 24])
        else:
            embedded = _dib("ICO", data, offset)
            embedded = ImageHeader("ICO", embedded.width, embedded.height // 2)  # the AND mask doubles it
        width = max(width, listed_width or 256, embedded.width)
        height = max(height, listed_height or 256, embedded.height)
    return ImageHeader("ICO", width, height)


def _tiff(data: bytes) -> ImageHeader:
    order = "<" if data.startswith(b"II") else ">"
    (magic,) = _unpack(order + "H", data, 2)
    big = magic == 43  # BigTIFF: 8-byte offsets and counts
    (offset,) = _unpack(order + ("Q" if big else "I"), data, 8 if big else 4)
    (count,) = _unpack(order + ("Q" if big else "H"), data, offset)
    entry_size, first = (20, offset + 8) if big else (12, offset + 2)
    size: dict[int, int] = {}
    for index in range(min(count, 4096)):
        at = first + index * entry_size
        tag, kind = _unpack(order + "HH", data, at)
        if tag in (256, 257):  # ImageWidth, ImageLength: SHORT, LONG or LONG8, held in the entry
            value_at = at + (12 if big else 8)
            (size[tag],) = _unpack(order + {3: "H", 4: "I", 16: "Q"}.get(kind, "I"), data, value_at)
    if 256 not in size or 257 not in size:
        raise InvalidImageError("the bytes are not a readable image (the TIFF names no width or height)")
    return ImageHeader("TIFF", size[256], size[257])


# ISOBMFF brands (``ftyp``) of still images: AVIF's, then HEIF's (HEVC-coded or generic).
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1"})


def container_format(data: bytes) -> str | None:
    """``"AVIF"`` or ``"HEIF"`` (Pillow's names) when ``data`` is such an ISOBMFF image, else None.
    An AVIF brand anywhere in ``ftyp`` wins: AVIF files list ``mif1`` too."""
    if data[4:8] != b"ftyp":
        return None
    (size,) = struct.unpack_from(">I", data, 0) if len(data) >= 4 else (0,)
    brands = {data[8:12]} | {data[at : at + 4] for at in range(16, min(size, len(data), 256), 4)}
    if brands & _AVIF_BRANDS:
        return "AVIF"
    if brands & _HEIF_BRANDS:
        return "HEIF"
    return None


# Boxes that hold the item properties: meta (a full box: 4 bytes of version and flags) > iprp > ipco.
_CONTAINER_BOXES = {b"meta": 4, b"iprp": 0, b"ipco": 0}


def _isobmff(data: bytes) -> ImageHeader:
    fmt = container_format(data) or "HEIF"
    extents = list(_spatial_extents(data, 0, len(data), depth=0))
    if not extents:
        raise InvalidImageError(f"the bytes are not a readable image (the {fmt} file declares no image size)")
    width, height = max(extents, key=lambda size: size[0] * size[1])
    return ImageHeader(fmt, width, height)


def _spatial_extents(data: bytes, start: int, end: int, *, depth: int) -> Iterator[tuple[int, int]]:
    """Each ``ispe`` (width, height) in the boxes between ``start`` and ``end``."""
    offset = start
    while offset + 8 <= end:
        (size,) = _unpack(">I", data, offset)
        kind = data[offset + 4 : offset + 8]
        header = 8
        if size == 1:  # a 64-bit size follows the type
            (size,) = _unpack(">Q", data, offset + 8)
            header = 16
        elif size == 0:  # the box runs to the end
            size = end - offset
        if size < header or offset + size > end:
            raise _Truncated
        if kind == b"ispe":
            width, height = _unpack(">II", data, offset + header + 4)  # after version and flags
            yield width, height
        elif kind in _CONTAINER_BOXES and depth < 4:
            yield from _spatial_extents(data, offset + header + _CONTAINER_BOXES[kind], offset + size, depth=depth + 1)
        offset += size


_READERS = (
    (b"\xff\xd8\xff", "JPEG", _jpeg),
    (b"\x89PNG\r\n\x1a\n", "PNG", _png),
    (b"GIF87a", "GIF", _gif),
    (b"GIF89a", "GIF", _gif),
    (b"BM", "BMP", _bmp),
    (b"RIFF", "WEBP", _webp),
    (b"\x00\x00\x01\x00", "ICO", _ico),
    (b"II*\x00", "TIFF", _tiff),
    (b"MM\x00*", "TIFF", _tiff),
    (b"II+\x00", "TIFF", _tiff),
    (b"MM\x00+", "TIFF", _tiff),
    # Not formats the service reads: ``container_format`` names them from the ``ftyp`` box.
    (b"", "AVIF", _isobmff),
    (b"", "HEIF", _isobmff),
)
