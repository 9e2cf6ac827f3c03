"""Decoding and resizing: image files and pixel arrays -> (N, S, S, C) uint8, one way for all.

Every source goes through these functions, so the same face gives the same array whether it
is stored as a PNG, a CSV pixel string, an `.npz` array or a TFDS record.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from emotionkit.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


def decode_images(
    paths: list[Path], image_size: int, channels: int, on_error: str = "raise"
) -> tuple[np.ndarray, np.ndarray, list[dict[str, str]]]:
    """Decode PNG/JPEG/BMP/GIF files in parallel with tf.io into (N, S, S, C) uint8.

    Where TensorFlow is not installed (a JAX-only host), OpenCV decodes them instead
    (`decode_with_opencv`).

    Returns:
        The decoded images, the indices of `paths` they come from, and one
        `{"path", "reason"}` per file that could not be read (empty, truncated, not an image).

    Raises:
        DataError: a file failed and `on_error` is `raise`; the message names the file.
    """
    from emotionkit.installed import tensorflow_available

    if not tensorflow_available():
        return decode_with_opencv(paths, image_size, channels, on_error)
    import tensorflow as tf

    def decode(index: tf.Tensor, path: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return index, _decode_resize(tf.io.read_file(path), image_size, channels)

    dataset = tf.data.Dataset.from_tensor_slices((np.arange(len(paths)), [str(p) for p in paths]))
    dataset = dataset.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.ignore_errors()  # failures are found below, from the missing indices
    kept_parts, image_parts = [], []
    for indices, images in dataset.batch(4096):
        kept_parts.append(indices.numpy())
        image_parts.append(images.numpy())
    kept = np.concatenate(kept_parts) if kept_parts else np.zeros(0, dtype=np.int64)
    images = (
        np.concatenate(image_parts)
        if image_parts
        else np.zeros((0, image_size, image_size, channels), dtype=np.uint8)
    )
    failed = np.setdiff1d(np.arange(len(paths)), kept)
    errors = [{"path": str(paths[i]), "reason": _decode_failure(paths[i])} for i in failed]
    raise_on_bad_files(errors, on_error)
    return images, kept, errors


def cached_decode(
    paths: list[Path], image_size: int, channels: int, on_error: str = "raise"
) -> tuple[np.ndarray, np.ndarray, list[dict[str, str]]]:
    """`decode_images`, memoised on disk: decoding FER2013's 28,709 PNGs takes ~10 s.

    The key hashes every path with its size and modification time plus the decode settings,
    so an edited, added or removed file means a fresh decode. Failures are cached too (and
    still raise with `on_error: raise`).
    """
    digest = hashlib.sha256(f"{image_size}|{channels}".encode())
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
        images, kept, errors = decode_images(paths, image_size, channels, on_error="skip")
        _save_npz_atomically(cache_file, images=images, kept=kept, errors=json.dumps(errors))
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


def _save_npz_atomically(path: Path, **arrays: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial.npz")
    np.savez(partial, **arrays)
    os.replace(partial, path)


def _decode_resize(encoded: Any, image_size: int, channels: int) -> Any:
    import tensorflow as tf

    image = tf.io.decode_image(encoded, channels=channels, expand_animations=False)
    image = tf.image.resize(image, (image_size, image_size), antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)


def _decode_failure(path: Path) -> str:
    """Why one file does not decode: re-read eagerly to get TensorFlow's message."""
    import tensorflow as tf

    if not path.is_file():
        return "file not found"
    if path.stat().st_size == 0:
        return "empty file (0 bytes)"
    try:
        tf.io.decode_image(tf.io.read_file(str(path)), expand_animations=False)
    except (tf.errors.OpError, ValueError) as error:
        message = str(getattr(error, "message", error)).splitlines()[0]
        return re.sub(r"\{\{.*?\}\}\s*|\s*\[Op:\w+\]|\s*name:\s*$", "", message)
    return "decode failed"


def resize_pixels(images: np.ndarray, image_size: int, channels: int) -> np.ndarray:
    """(N, H, W[, C]) uint8 arrays from CSV pixel strings, npz or TFDS -> (N, S, S, C) uint8.

    Uses the same antialiased resize and channel conversion as files decoded from disk, so a
    source gives identical arrays whichever way the pixels are stored.
    """
    if images.ndim == 3:
        images = images[..., None]
    if images.shape[-1] not in (1, 3):
        raise DataError(f"Images must have 1 or 3 channels, got shape {images.shape}.")
    if images.shape[1:] == (image_size, image_size, channels):
        return np.ascontiguousarray(images, dtype=np.uint8)
    from emotionkit.installed import tensorflow_available

    if not tensorflow_available():
        return np.stack([_convert_with_opencv(image, image_size, channels) for image in images])
    import tensorflow as tf

    if images.shape[-1] != channels:
        convert = tf.image.grayscale_to_rgb if channels == 3 else tf.image.rgb_to_grayscale
        images = convert(tf.constant(images)).numpy()
    if images.shape[1:3] == (image_size, image_size):
        return np.ascontiguousarray(images, dtype=np.uint8)
    resized = tf.image.resize(images, (image_size, image_size), antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8).numpy()


def decode_with_opencv(
    paths: list[Path], image_size: int, channels: int, on_error: str = "raise"
) -> tuple[np.ndarray, np.ndarray, list[dict[str, str]]]:
    """`decode_images` without TensorFlow: OpenCV, file by file (no GIF).

    Greyscale PNGs at the model's size (FER2013) decode to the same pixels as tf.io; colour
    conversion and resizing round like OpenCV (area interpolation), which can differ from
    TensorFlow's antialiased resize by a grey level.
    """
    import cv2

    images, kept, errors = [], [], []
    for index, path in enumerate(paths):
        data = np.fromfile(path, dtype=np.uint8) if path.is_file() else np.zeros(0, np.uint8)
        image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
        if image is None:
            reason = "file not found" if not path.is_file() else "OpenCV cannot decode it"
            errors.append({"path": str(path), "reason": reason})
            continue
        images.append(_convert_with_opencv(_as_rgb_or_grey(image), image_size, channels))
        kept.append(index)
    raise_on_bad_files(errors, on_error)
    empty = np.zeros((0, image_size, image_size, channels), np.uint8)
    return (np.stack(images) if images else empty), np.asarray(kept, np.int64), errors


def _as_rgb_or_grey(image: np.ndarray) -> np.ndarray:
    """OpenCV's BGR(A) or grey decode as (H, W, 3) RGB or (H, W, 1) grey uint8."""
    import cv2

    if image.dtype != np.uint8:  # 16-bit PNG
        image = (image // 257).astype(np.uint8)
    if image.ndim == 2:
        return image[..., None]
    code = cv2.COLOR_BGRA2RGB if image.shape[-1] == 4 else cv2.COLOR_BGR2RGB
    return cv2.cvtColor(image, code)


def _convert_with_opencv(image: np.ndarray, image_size: int, channels: int) -> np.ndarray:
    """One (H, W, 1|3) uint8 image -> (S, S, channels) uint8 with OpenCV."""
    import cv2

    if image.shape[-1] != channels:
        code = cv2.COLOR_GRAY2RGB if channels == 3 else cv2.COLOR_RGB2GRAY
        image = cv2.cvtColor(image, code)
    if image.shape[:2] != (image_size, image_size):
        image = cv2.resize(image, (image_size, image_size), interpolation=cv2.INTER_AREA)
    return image.reshape(image_size, image_size, channels)
