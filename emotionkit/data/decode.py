"""Decoding and resizing: image files and pixel arrays -> (N, S, S, C) uint8, one way for all.

Every source goes through these functions, so the same face gives the same array whether it
is stored as a PNG, a CSV pixel string, an `.npz` array or a TFDS record.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from emotionkit.data.faces import NoFaceFoundError
from emotionkit.errors import DataError
from emotionkit.image_decode import ImageDecodeError, read_image_file, to_model_pixels

if TYPE_CHECKING:
    from emotionkit.data.faces import FacesSpec
    from emotionkit.data.spec import DataSpec

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


def decode_files(
    paths: list[Path], data: DataSpec
) -> tuple[np.ndarray, np.ndarray, list[dict[str, str]]]:
    """`decode_images` by the recipe's `data` settings: size, channels, faces, cache, errors."""
    decode = cached_decode if data.cache else decode_images
    return decode(paths, data.image_size, data.channels, data.on_error, data.faces)


def decode_images(
    paths: list[Path],
    image_size: int,
    channels: int,
    on_error: str = "raise",
    faces: FacesSpec | None = None,
) -> tuple[np.ndarray, np.ndarray, list[dict[str, str]]]:
    """Decode image files (PNG/JPEG/BMP/GIF, ...) into (N, S, S, C) uint8.

    Decoding and resizing are `emotionkit.image_decode`'s, the ones `predict` and `serve`
    use, so a file gives training, `evaluate`, `predict` and `serve` the same pixels
    (tf.io's JPEG decoder, with its fast DCT, was 1.6 grey levels off OpenCV's on FER2013).
    With `faces` (`data.faces`), each image is first cut down to its largest face. Files are
    decoded in threads: OpenCV and onnxruntime release the GIL while they work.

    Returns:
        The decoded images, the indices of `paths` they come from, and one
        `{"path", "reason"}` per file that could not be read (empty, truncated, not an image,
        too large) or, with `faces`, showed no face.

    Raises:
        DataError: a file failed and `on_error` is `raise`; the message names the file.
    """
    from concurrent.futures import ThreadPoolExecutor

    crop = faces.cropper(image_size) if faces is not None else (lambda pixels: pixels)

    def decode(path: Path) -> np.ndarray | str:
        try:
            return to_model_pixels(crop(read_image_file(path)), channels, image_size)
        except (ImageDecodeError, NoFaceFoundError) as error:
            return str(error)

    images, kept, errors = [], [], []
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        for index, (path, result) in enumerate(zip(paths, pool.map(decode, paths), strict=True)):
            if isinstance(result, str):
                errors.append({"path": str(path), "reason": result})
            else:
                images.append(result)
                kept.append(index)
    raise_on_bad_files(errors, on_error)
    empty = np.zeros((0, image_size, image_size, channels), np.uint8)
    return (np.stack(images) if images else empty), np.asarray(kept, np.int64), errors


def cached_decode(
    paths: list[Path],
    image_size: int,
    channels: int,
    on_error: str = "raise",
    faces: FacesSpec | None = None,
) -> tuple[np.ndarray, np.ndarray, list[dict[str, str]]]:
    """`decode_images`, memoised on disk: decoding FER2013's 28,709 PNGs takes ~10 s.

    The key hashes every path with its size and modification time plus the decode settings,
    so an edited, added or removed file means a fresh decode. Failures are cached too (and
    still raise with `on_error: raise`).
    """
    # The decoder's name: arrays cached by the tf.io decoder are not reused.
    crop = faces.metadata() if faces is not None else "whole"
    digest = hashlib.sha256(f"{image_size}|{channels}|image_decode|{crop}".encode())
    for path in paths:
        stat = path.stat() if path.is_file() else None  # a missing file is a reported error
        version = f"{stat.st_size}|{stat.st_mtime_ns}" if stat else "missing"
        digest.update(f"|{path.resolve()}|{version}".encode())
    cache_file = cache_dir() / "decoded" / f"{digest.hexdigest()[:24]}.npz"
    if cache_file.is_file():
        with np.load(cache_file, allow_pickle=False) as cached:
            images, kept = cached["images"], cached["kept"]
            errors = json.loads(str(cached["errors"]))
    else:
        images, kept, errors = decode_images(paths, image_size, channels, "skip", faces)
        save_npz_atomically(cache_file, images=images, kept=kept, errors=json.dumps(errors))
    raise_on_bad_files(errors, on_error)
    return images, kept, errors


def raise_on_bad_files(errors: list[dict[str, str]], on_error: str) -> None:
    """With `data.on_error: raise`, stop at the first unreadable file, naming it."""
    if errors and on_error == "raise":
        raise DataError(
            f"Cannot decode image {errors[0]['path']}: {errors[0]['reason']} "
            f"({len(errors)} bad file(s); data.on_error: skip drops them)."
        )


def cache_dir() -> Path:
    """`$EMOTIONKIT_CACHE_DIR`, else `~/.cache/emotionkit`."""
    default = Path.home() / ".cache" / "emotionkit"
    return Path(os.environ.get("EMOTIONKIT_CACHE_DIR", default))


def save_npz_atomically(path: Path, **arrays: Any) -> None:
    """Write to a temporary name, then rename: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial.npz")
    np.savez(partial, **arrays)
    os.replace(partial, path)


def resize_pixels(images: np.ndarray, image_size: int, channels: int) -> np.ndarray:
    """(N, H, W[, C]) uint8 arrays from CSV pixel strings, npz or TFDS -> (N, S, S, C) uint8.

    Uses the same resize and channel conversion as files decoded from disk
    (`image_decode.to_model_pixels`), so a source gives identical arrays whichever way the
    pixels are stored.
    """
    if images.ndim == 3:
        images = images[..., None]
    if images.shape[-1] not in (1, 3):
        raise DataError(f"Images must have 1 or 3 channels, got shape {images.shape}.")
    if images.shape[1:] == (image_size, image_size, channels):
        return np.ascontiguousarray(images, dtype=np.uint8)
    return np.stack([to_model_pixels(image, channels, image_size) for image in images])
