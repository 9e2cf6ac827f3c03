"""One decoder: training, `evaluate`, `predict` and `serve` see the same pixels for a file.

Training and `evaluate` decode with `emotionkit.data.decode.decode_images`, `predict` with
`read_image`, `serve` with `emotionkit.serve.images.decode_image`; all go through
`emotionkit.image_decode`, and these tests hold them to identical arrays on JPEG, PNG, BMP
and GIF files, grey and colour, and the pixel limit to the header.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from emotionkit.data.decode import decode_images
from emotionkit.errors import DataError
from emotionkit.image_decode import ImageDecodeError, decode_image, header_size, to_model_pixels
from emotionkit.predict import read_image
from emotionkit.predict.predictor import _model_input
from emotionkit.serve.images import ImageError
from emotionkit.serve.images import decode_image as serve_decode

SIZE = 48


def scene(colour: bool) -> np.ndarray:
    """A 70 x 90 image with edges and texture, so that decoders and resizers disagree if
    they differ: gradients plus noise (RGB, or grey)."""
    rng = np.random.default_rng(7)
    ys, xs = np.mgrid[0:70, 0:90]
    base = np.stack([xs * 2.5, ys * 3.0, (xs + ys) * 1.5], axis=-1) + rng.normal(0, 20, (70, 90, 3))
    image = np.clip(base, 0, 255).astype(np.uint8)
    return image if colour else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def write(path: Path, image: np.ndarray) -> Path:
    if path.suffix == ".gif":  # OpenCV writes no GIF before 4.11: Pillow's palette GIF
        Image.fromarray(image).save(path)
    else:
        bgr = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        assert cv2.imwrite(str(path), bgr)
    return path


@pytest.mark.parametrize("colour", [False, True], ids=["grey", "colour"])
@pytest.mark.parametrize("suffix", [".jpg", ".png", ".bmp", ".gif"])
def test_training_predict_and_serve_decode_a_file_to_the_same_pixels(
    tmp_path: Path, suffix: str, colour: bool
) -> None:
    path = write(tmp_path / f"face{suffix}", scene(colour))
    for channels in (1, 3):
        training, kept, errors = decode_images([path], SIZE, channels)
        assert list(kept) == [0] and errors == []
        predicted = _model_input(read_image(path), channels, SIZE)
        served = _model_input(serve_decode(path.read_bytes()), channels, SIZE)
        np.testing.assert_array_equal(predicted, training[0].astype(np.float32))
        np.testing.assert_array_equal(served, predicted)
    if not colour and suffix != ".jpg":  # lossless grey: exactly the file's grey levels
        grey = decode_images([path], 70, 1)[0][0, ..., 0]
        np.testing.assert_array_equal(grey, to_model_pixels(scene(False)[..., None], 1, 70)[..., 0])


def test_header_sizes_of_every_accepted_format(tmp_path: Path) -> None:
    image = scene(True)
    for suffix in (".png", ".jpg", ".bmp", ".gif", ".webp", ".tif", ".ppm"):
        data = write(tmp_path / f"x{suffix}", image).read_bytes()
        assert header_size(data) == (90, 70), suffix
        assert decode_image(data).shape == (70, 90, 3), suffix


def png_header(width: int, height: int) -> bytes:
    fields = struct.pack(">II", width, height) + bytes([8, 2, 0, 0, 0])
    chunk = b"IHDR" + fields
    return (
        b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + zlib.crc32(chunk).to_bytes(4, "big")
    )


def test_a_pixel_bomb_is_refused_from_its_header_before_decoding(tmp_path: Path) -> None:
    bomb = png_header(100_000, 100_000)  # 10 gigapixels in 33 bytes
    with pytest.raises(ImageDecodeError, match=r"too large: 100000x100000 pixels"):
        decode_image(bomb)
    with pytest.raises(ImageDecodeError, match="too large"):
        decode_image(cv2.imencode(".png", scene(True))[1].tobytes(), max_pixels=1000)
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb)
    with pytest.raises(DataError, match=rf"{path.name}: too large"):
        read_image(path)
    with pytest.raises(ImageError, match="at most 40,000,000 pixels"):
        serve_decode(bomb)
    _, _, errors = decode_images([path], SIZE, 1, on_error="skip")
    assert "too large" in errors[0]["reason"]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty file (0 bytes)"),
        (b"hello, this is text", "not an image (unknown file signature)"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 40, "corrupt JPEG: no frame header"),
        (png_header(64, 64) + b"\x00" * 30, "corrupt PNG: it could not be decoded"),
        (b"GIF89a\x01", "corrupt GIF: its header is cut short"),
        (png_header(0, 5), "the header declares an empty image (0x5)"),
    ],
    ids=["empty", "text", "jpeg-without-frame", "truncated-png", "short-gif", "zero-width"],
)
def test_bad_bytes_name_the_reason(data: bytes, reason: str) -> None:
    with pytest.raises(ImageDecodeError) as caught:
        decode_image(data)
    assert str(caught.value).startswith(reason)
