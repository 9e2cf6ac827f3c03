"""Uploaded bytes -> RGB pixels, with the decoder training and `predict` use.

`emotionkit.image_decode` reads the image size from the file header *before* decoding: a
few-kilobyte PNG can declare 100,000 x 100,000 pixels, and OpenCV's own cap (2**30 pixels,
read once when cv2 is imported) would still let it allocate 3 GB per request. Formats:
JPEG, PNG, GIF, BMP, WebP, TIFF and Netpbm, recognised by their signature.
"""

from __future__ import annotations

import cv2
import numpy as np

from emotionkit import image_decode
from emotionkit.image_decode import MAX_IMAGE_PIXELS, ImageDecodeError

__all__ = ["MAX_IMAGE_PIXELS", "ImageError", "decode_image", "header_size", "image_format"]


class ImageError(ValueError):
    """Bytes that are not a decodable image of an accepted format and size."""


def image_format(data: bytes) -> str:
    """The format from the file signature ("png", "jpeg", ...); ImageError for anything else."""
    if not data:
        raise ImageError("the request has no image: send a JPEG, PNG or other image file.")
    try:
        return image_decode.image_format(data)
    except ImageDecodeError as error:
        raise ImageError(f"{error}: send a JPEG, PNG, GIF, BMP, WebP or TIFF image.") from None


def header_size(data: bytes) -> tuple[int, int]:
    """(width, height) as the file header declares it, without decoding pixels."""
    image_format(data)
    try:
        return image_decode.header_size(data)
    except ImageDecodeError as error:
        raise ImageError(f"{error}.") from None


def quiet_decoder_warnings() -> None:
    """Silence OpenCV's own decoder warnings ("PNG input buffer is incomplete"): the server
    logs each refused upload once, with its reason, and they would add a second line."""
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


def decode_image(data: bytes, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """An image file's bytes as RGB uint8 (H, W, 3): `image_decode.decode_image`, so the
    same file gives the same pixels as `emotionkit predict` and training.

    A phone photo's EXIF orientation is applied (as browsers do when they show it), so boxes
    are in the coordinates of the image as displayed.

    Raises:
        ImageError: not an accepted format, a corrupt file, or more than `max_pixels` pixels.
    """
    image_format(data)
    try:
        return image_decode.decode_image(data, max_pixels)
    except ImageDecodeError as error:
        raise ImageError(f"{error}.") from None
