"""One image decoder for training, `evaluate`, `predict` and `serve`: same file, same pixels.

TensorFlow's `decode_jpeg` (fast integer DCT by default) and OpenCV's libjpeg-turbo (accurate
DCT) decode the same FER2013 JPEG 1.6 grey levels apart on average, enough to flip some
predictions, so every path decodes here, with OpenCV: `decode_image` turns file bytes into
RGB uint8 pixels (refusing, from the header alone, images above a pixel limit before any
pixel buffer is allocated), and `to_model_pixels` converts and resizes them to the model's
input the one way training did. Only NumPy and OpenCV are imported (Pillow only for GIF on
OpenCV < 4.11), so `emotionkit.predict` and `emotionkit.serve` can use it without the
training stack, and `emotionkit.data.decode` without the inference path.

Example:
    >>> pixels = decode_image(Path("face.jpg").read_bytes())  # doctest: +SKIP
    >>> to_model_pixels(pixels, channels=1, image_size=48).shape  # doctest: +SKIP
    (48, 48, 1)
"""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np

from emotionkit.errors import DataError

# 40 megapixels: above the 12-24 MP of phone and camera photos, and at most ~160 MB of RGB +
# grayscale pixels per image. OpenCV's own cap (2**30 pixels, read once at import) would let a
# few-kilobyte PNG declaring 100,000 x 100,000 pixels allocate 30 GB.
MAX_IMAGE_PIXELS = 40_000_000
# Formats whose header gives the size before decoding; anything else is refused, so OpenCV
# never runs one of its rarer decoders (EXR, HDR, JPEG 2000, ...) on untrusted bytes.
FORMATS = ("png", "jpeg", "gif", "bmp", "webp", "tiff", "pnm")
# JPEG start-of-frame markers (SOF0-3, 5-7, 9-11, 13-15) carry the image size; C4, C8 and
# CC, in the same range, are other segments (Huffman tables, reserved, arithmetic coding).
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers without a length field: TEM and the restart markers RST0-7.
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})


class ImageDecodeError(DataError):
    """Bytes that are not a decodable image of an accepted format and size."""


def image_format(data: bytes) -> str:
    """The format named by the file signature (one of `FORMATS`); ImageDecodeError otherwise."""
    if not data:
        raise ImageDecodeError("empty file (0 bytes)")
    signatures = {
        b"\x89PNG\r\n\x1a\n": "png",
        b"\xff\xd8\xff": "jpeg",
        b"GIF87a": "gif",
        b"GIF89a": "gif",
        b"BM": "bmp",
        b"II*\x00": "tiff",
        b"MM\x00*": "tiff",
    }
    for signature, name in signatures.items():
        if data.startswith(signature):
            return name
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if len(data) > 2 and data[0:1] == b"P" and data[1:2] in b"123456" and data[2:3].isspace():
        return "pnm"
    raise ImageDecodeError("not an image (unknown file signature)")


def header_size(data: bytes) -> tuple[int, int]:
    """(width, height) as the file header declares it, without decoding any pixels."""
    kind = image_format(data)
    try:
        return _HEADER_READERS[kind](data)
    except (struct.error, IndexError, ValueError):
        raise ImageDecodeError(f"corrupt {kind.upper()}: its header is cut short") from None


def decode_image(data: bytes, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """An image file's bytes as RGB uint8 (H, W, 3).

    The size is read from the header and checked against `max_pixels` first. OpenCV's
    IMREAD_COLOR then decodes it: grey images come out with R = G = B (so the grey the
    model sees is exactly the file's), 16-bit ones are scaled to 8 bits, alpha is dropped,
    a JPEG's EXIF orientation is applied (phone photos upright), a GIF's first frame is used.

    Raises:
        ImageDecodeError: empty, unknown format, corrupt, or more than `max_pixels` pixels.
    """
    width, height = header_size(data)
    if width < 1 or height < 1:
        raise ImageDecodeError(f"the header declares an empty image ({width}x{height})")
    if width * height > max_pixels:
        raise ImageDecodeError(
            f"too large: {width}x{height} pixels; at most {max_pixels:,} pixels are accepted"
        )
    kind = image_format(data)
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as error:  # OpenCV asserts on some malformed headers instead of failing
        raise ImageDecodeError(f"corrupt {kind.upper()}: {_first_line(error)}") from None
    if image is None and kind == "gif":
        return _decode_gif_with_pillow(data)
    if image is None:
        raise ImageDecodeError(f"corrupt {kind.upper()}: it could not be decoded")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_image_file(path: Path, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """`decode_image` of a file; np.fromfile reads any path (imread fails on non-ASCII
    Windows paths). Raises ImageDecodeError naming why, never the path (callers add it)."""
    try:
        data = np.fromfile(path, np.uint8).tobytes()
    except FileNotFoundError:
        raise ImageDecodeError("file not found") from None
    except OSError as error:
        raise ImageDecodeError(f"cannot be read ({error.strerror})") from None
    return decode_image(data, max_pixels)


def convert_channels(pixels: np.ndarray, channels: int) -> np.ndarray:
    """(H, W, C) RGB(A) or grey pixels -> (H, W, `channels`), with cv2's BT.601 weights
    (the same as tf.image.rgb_to_grayscale to 3 decimals; exact on R = G = B)."""
    have = pixels.shape[-1]
    codes = {
        (1, 3): cv2.COLOR_GRAY2RGB,
        (3, 1): cv2.COLOR_RGB2GRAY,
        (4, 1): cv2.COLOR_RGBA2GRAY,
        (4, 3): cv2.COLOR_RGBA2RGB,
    }
    if have == channels:
        return pixels
    converted = cv2.cvtColor(pixels, codes[(have, channels)])
    return converted[..., None] if converted.ndim == 2 else converted


def to_model_pixels(pixels: np.ndarray, channels: int, image_size: int) -> np.ndarray:
    """(H, W, C) pixels -> uint8 (size, size, channels), the one resize every path uses.

    INTER_AREA is OpenCV's antialiased downscale; when a side grows, where antialiasing does
    nothing, plain bilinear (INTER_AREA would act like nearest neighbour there). No aspect
    ratio is kept: a face crop is square already, and training squashed whole images too.
    Float input is rounded to whole 0-255 values, as decoded files are.
    """
    converted = convert_channels(pixels, channels)
    height, width = converted.shape[:2]
    if (height, width) != (image_size, image_size):
        shrinking = height >= image_size and width >= image_size
        method = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        converted = cv2.resize(converted, (image_size, image_size), interpolation=method)
    resized = converted.reshape(image_size, image_size, channels)
    if resized.dtype == np.uint8:
        return resized
    return np.clip(np.round(resized), 0, 255).astype(np.uint8)


def _first_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def _decode_gif_with_pillow(data: bytes) -> np.ndarray:
    """GIF's first frame as RGB, for OpenCV builds before 4.11 (which have no GIF decoder)."""
    import io

    try:
        from PIL import Image
    except ImportError:
        raise ImageDecodeError(
            f"GIF needs OpenCV >= 4.11 or Pillow (OpenCV {cv2.__version__} has no GIF decoder)"
        ) from None
    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, ValueError, SyntaxError) as error:
        raise ImageDecodeError(f"corrupt GIF: {error}") from None


def _png_size(data: bytes) -> tuple[int, int]:
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise ImageDecodeError("corrupt PNG: no IHDR header")
    return struct.unpack(">II", data[16:24])


def _jpeg_size(data: bytes) -> tuple[int, int]:
    """Walk the JPEG marker segments up to the first start-of-frame (SOF) segment."""
    index = 2
    while index + 4 <= len(data):
        if data[index] != 0xFF:
            break
        marker = data[index + 1]
        if marker == 0xFF:  # fill byte before a marker
            index += 1
        elif marker in _JPEG_STANDALONE:
            index += 2
        elif marker in _JPEG_SOF and index + 9 <= len(data):
            height, width = struct.unpack(">HH", data[index + 5 : index + 9])
            return width, height
        elif marker in (0xD9, 0xDA):  # end of image, or scan data, before any frame header
            break
        else:
            index += 2 + int.from_bytes(data[index + 2 : index + 4], "big")
    raise ImageDecodeError("corrupt JPEG: no frame header with the image size")


def _gif_size(data: bytes) -> tuple[int, int]:
    return struct.unpack("<HH", data[6:10])  # the logical screen, which decoders allocate


def _bmp_size(data: bytes) -> tuple[int, int]:
    (header,) = struct.unpack("<I", data[14:18])
    if header == 12:  # BITMAPCOREHEADER: 16-bit sizes
        return struct.unpack("<HH", data[18:22])
    width, height = struct.unpack("<ii", data[18:26])
    return abs(width), abs(height)  # a negative height is a top-down bitmap


def _webp_size(data: bytes) -> tuple[int, int]:
    chunk = data[12:16]
    if chunk == b"VP8X":  # extended: 24-bit canvas size minus one
        return (
            1 + int.from_bytes(data[24:27], "little"),
            1 + int.from_bytes(data[27:30], "little"),
        )
    if chunk == b"VP8L":  # lossless: 14-bit sizes minus one, after the 0x2F signature byte
        bits = int.from_bytes(data[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    if chunk == b"VP8 ":  # lossy: 14-bit sizes after the frame tag and start code
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    raise ImageDecodeError("corrupt WEBP: unknown first chunk")


def _tiff_size(data: bytes) -> tuple[int, int]:
    """ImageWidth (256) and ImageLength (257) from the first image file directory."""
    order = "<" if data[:2] == b"II" else ">"
    (offset,) = struct.unpack(order + "I", data[4:8])
    (count,) = struct.unpack(order + "H", data[offset : offset + 2])
    found: dict[int, int] = {}
    for entry in range(count):
        start = offset + 2 + 12 * entry
        tag, kind = struct.unpack(order + "HH", data[start : start + 4])
        if tag in (256, 257):
            fmt = order + ("H" if kind == 3 else "I")
            found[tag] = struct.unpack(fmt, data[start + 8 : start + 8 + struct.calcsize(fmt)])[0]
    if set(found) != {256, 257}:
        raise ImageDecodeError("corrupt TIFF: no image width and length tags")
    return found[256], found[257]


def _pnm_size(data: bytes) -> tuple[int, int]:
    """Netpbm (PBM/PGM/PPM): magic, width, height as ASCII tokens; '#' starts a comment."""
    lines = data[:1024].split(b"\n")
    tokens = [t for line in lines for t in line.split(b"#", 1)[0].split()]
    return int(tokens[1]), int(tokens[2])


_HEADER_READERS = {
    "png": _png_size,
    "jpeg": _jpeg_size,
    "gif": _gif_size,
    "bmp": _bmp_size,
    "webp": _webp_size,
    "tiff": _tiff_size,
    "pnm": _pnm_size,
}
