"""Uploaded bytes -> RGB pixels, refusing anything but a JPEG or PNG of sane size.

The image size is read from the file header *before* decoding: a few-kilobyte PNG can
declare 100,000 x 100,000 pixels, and OpenCV's own cap (2**30 pixels, read once when cv2
is imported) would still let it allocate 3 GB per request.
"""

from __future__ import annotations

import cv2
import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SIGNATURE = b"\xff\xd8\xff"
# 40 megapixels: above the 12-24 MP of phone and camera photos, and at most ~160 MB of
# RGB + grayscale pixels per request in flight.
MAX_IMAGE_PIXELS = 40_000_000
# JPEG start-of-frame markers (SOF0-3, 5-7, 9-11, 13-15) carry the image size; C4, C8 and
# CC, in the same range, are other segments (Huffman tables, reserved, arithmetic coding).
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers without a length field: TEM and the restart markers RST0-7.
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})


class ImageError(ValueError):
    """Bytes that are not a decodable JPEG or PNG image of acceptable size."""


def image_format(data: bytes) -> str:
    """ "png" or "jpeg" from the file signature; ImageError for anything else."""
    if data.startswith(PNG_SIGNATURE):
        return "png"
    if data.startswith(JPEG_SIGNATURE):
        return "jpeg"
    if not data:
        raise ImageError("the request has no image: send a JPEG or PNG file.")
    raise ImageError("not a JPEG or PNG image (unknown file signature).")


def header_size(data: bytes) -> tuple[int, int]:
    """(width, height) as the PNG or JPEG header declares it, without decoding pixels."""
    if image_format(data) == "png":
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise ImageError("corrupt PNG: no IHDR header.")
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    return _jpeg_size(data)


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
            height = int.from_bytes(data[index + 5 : index + 7], "big")
            width = int.from_bytes(data[index + 7 : index + 9], "big")
            return width, height
        elif marker in (0xD9, 0xDA):  # end of image, or scan data, before any frame header
            break
        else:
            index += 2 + int.from_bytes(data[index + 2 : index + 4], "big")
    raise ImageError("corrupt JPEG: no frame header with the image size.")


def quiet_decoder_warnings() -> None:
    """Silence OpenCV's own decoder warnings ("PNG input buffer is incomplete"): the server
    logs each refused upload once, with its reason, and they would add a second line."""
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


def decode_image(data: bytes, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """A JPEG or PNG file's bytes as RGB uint8 (H, W, 3), like `predict.read_image`.

    IMREAD_COLOR applies a phone photo's EXIF orientation (as browsers do when they show
    it), so boxes are in the coordinates of the image as displayed.

    Raises:
        ImageError: not a JPEG/PNG, a corrupt one, or more than `max_pixels` pixels.
    """
    width, height = header_size(data)
    if width < 1 or height < 1:
        raise ImageError(f"the image header declares an empty image ({width}x{height}).")
    if width * height > max_pixels:
        raise ImageError(
            f"the image is {width}x{height} pixels; at most {max_pixels:,} pixels are accepted."
        )
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ImageError(f"corrupt {image_format(data).upper()} image: it could not be decoded.")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
