"""What `emotionkit predict` reads: image files, folders of them, and videos.

Every input that cannot be read is reported through `on_error` (one line naming it) and
skipped, so one corrupt file in a folder of thousands does not stop the run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from itertools import islice
from pathlib import Path

import cv2
import numpy as np

from emotionkit.errors import DataError
from emotionkit.predict.predictor import FaceMode, Prediction, Predictor

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".pgm"})
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv"})
ErrorHandler = Callable[[str], None]


@dataclass(frozen=True)
class Frame:
    """One image to classify: an image file, or one sampled frame of a video.

    Attributes:
        pixels: RGB uint8 (H, W, 3).
        source: The file, as given or as found in a folder.
        frame: The frame index in the video, or None for an image file.
        relative: The file relative to the folder argument it was found in (its name for a
            file argument): where `--annotate` writes its copy.
    """

    pixels: np.ndarray
    source: str
    frame: int | None
    relative: Path


@dataclass(frozen=True)
class FrameResult:
    """The predictions for one frame: one per face, or one with label None if none."""

    frame: Frame
    predictions: list[Prediction]


def read_image(path: Path) -> np.ndarray:
    """An image file as RGB uint8 (H, W, 3).

    np.fromfile + cv2.imdecode rather than cv2.imread: imread cannot open non-ASCII paths on
    Windows. IMREAD_COLOR (not UNCHANGED) applies the EXIF orientation of phone photos,
    whose faces the detector would otherwise see sideways, and brings 16-bit, gray and
    alpha images to 8-bit BGR.
    """
    try:
        data = np.fromfile(path, np.uint8)
    except OSError as error:
        raise DataError(f"{path}: cannot be read ({error.strerror}).") from error
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise DataError(f"{path}: not a readable image (corrupt, empty or an unknown format).")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_video_frames(path: Path, every: int, relative: Path) -> Iterator[Frame]:
    """Frames 0, `every`, 2 x `every`, ... of a video; the others are grabbed, not decoded."""
    # FFmpeg's own log lines ("moov atom not found") would repeat our one-line report; the
    # variable is read when OpenCV first opens a video, and a user's own setting wins.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise DataError(f"{path}: cannot be opened as a video.")
    index, kept = 0, 0
    try:
        while True:
            if index % every:
                if not capture.grab():
                    break
            else:
                ok, image = capture.read()
                if not ok:
                    break
                kept += 1
                yield Frame(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), str(path), index, relative)
            index += 1
    finally:
        capture.release()
    if not kept:
        raise DataError(f"{path}: no video frame could be decoded.")


def iter_files(paths: Sequence[Path], on_error: ErrorHandler) -> Iterator[tuple[Path, Path]]:
    """(file, relative name) for each file argument and each image/video under a folder,
    in argument order (so skip messages come in the order the inputs were given).

    Files named on the command line are kept whatever their suffix (decoding decides);
    folders are searched recursively for the suffixes in IMAGE_SUFFIXES and VIDEO_SUFFIXES.
    """
    suffixes = IMAGE_SUFFIXES | VIDEO_SUFFIXES
    for path in paths:
        if path.is_dir():
            files = sorted(f for f in path.rglob("*") if f.suffix.lower() in suffixes)
            files = [f for f in files if f.is_file()]
            if not files:
                on_error(f"{path}: no image or video files in this folder.")
            yield from ((file, file.relative_to(path)) for file in files)
        elif path.is_file():
            yield path, Path(path.name)
        else:
            on_error(f"{path}: not found.")


def iter_frames(paths: Sequence[Path], every: int, on_error: ErrorHandler) -> Iterator[Frame]:
    """Every image, and every `every`-th video frame, of `paths`; unreadable ones reported."""
    if every < 1:
        raise DataError(f"--every must be at least 1, got {every}.")
    for path, relative in iter_files(paths, on_error):
        try:
            if path.suffix.lower() in VIDEO_SUFFIXES:
                yield from read_video_frames(path, every, relative)
            else:
                yield Frame(read_image(path), str(path), None, relative)
        except DataError as error:
            on_error(str(error))


def predict_inputs(
    predictor: Predictor,
    paths: Sequence[Path],
    on_error: ErrorHandler,
    faces: FaceMode = "auto",
    every: int = 10,
    frames_per_call: int = 8,
) -> Iterator[FrameResult]:
    """Classify the faces of every readable image and sampled video frame of `paths`.

    Frames are batched `frames_per_call` at a time into one `Predictor.predict` call (one
    session.run for all their faces): few enough that decoded full-HD frames stay small.
    `Prediction.image_index` counts the frames read, across all inputs.

    Example:
        >>> for result in predict_inputs(Predictor("model.onnx"), [Path("photos")], print):
        ...     print(result.frame.source, [p.label for p in result.predictions])
        ...     # doctest: +SKIP
    """
    offset = 0
    for chunk in _chunks(iter_frames(paths, every, on_error), frames_per_call):
        predictions = predictor.predict(
            [frame.pixels for frame in chunk], faces, sources=[frame.source for frame in chunk]
        )
        for index, frame in enumerate(chunk):
            mine = [
                replace(p, frame=frame.frame, image_index=offset + index)
                for p in predictions
                if p.image_index == index
            ]
            yield FrameResult(frame, mine)
        offset += len(chunk)


def _chunks(frames: Iterable[Frame], size: int) -> Iterator[list[Frame]]:
    iterator = iter(frames)
    while chunk := list(islice(iterator, size)):
        yield chunk
