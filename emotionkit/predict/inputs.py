"""What `emotionkit predict` reads: image files, folders of them, videos, cameras and streams.

Every input that fails (unreadable, too large, not an image, a video that stops mid-way, a
frame the model cannot take) is reported through `on_error` as a `Skipped` and the run goes
on, so one bad file in a folder of thousands costs that file only. Frames that were
classified before a video broke are kept.
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
from emotionkit.image_decode import MAX_IMAGE_PIXELS, ImageDecodeError, read_image_file
from emotionkit.predict.predictor import FaceMode, Prediction, Predictor

IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".pgm", ".ppm"}
)
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv"})
# A camera or network stream that does not answer within this long counts as dead.
STREAM_TIMEOUT_MS = 10_000


@dataclass(frozen=True)
class Frame:
    """One image to classify: an image file, or one sampled frame of a video or stream.

    Attributes:
        pixels: RGB uint8 (H, W, 3).
        source: The file, as given or as found in a folder (or the camera / stream).
        frame: The frame index in the video or stream, or None for an image file.
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


@dataclass(frozen=True)
class Skipped:
    """An input, or a frame of one, that could not be classified, and why."""

    source: str
    reason: str
    frame: int | None = None

    def __str__(self) -> str:
        where = self.source if self.frame is None else f"{self.source}#{self.frame}"
        reason = self.reason if self.reason.endswith(".") else self.reason + "."
        return f"{where}: {reason}"


ErrorHandler = Callable[[Skipped], None]


def read_image(path: Path, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """An image file as RGB uint8 (H, W, 3), decoded as training decodes it.

    `emotionkit.image_decode`: the size is read from the header and refused above
    `max_pixels` before any pixel is allocated; a JPEG's EXIF orientation is applied, so
    phone photos are upright.

    Raises:
        DataError: naming the file and why (not found, empty, not an image, corrupt, too large).
    """
    try:
        return read_image_file(path, max_pixels)
    except ImageDecodeError as error:
        raise DataError(f"{path}: {error}") from None


def open_capture(source: str | int, what: str) -> cv2.VideoCapture:
    """An opened cv2.VideoCapture, or DataError naming `what` (the file, camera or URL)."""
    # FFmpeg's and V4L's own log lines ("moov atom not found", "can't open camera by index")
    # would repeat our one-line report; a user's own FFmpeg setting wins.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    timeouts = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, STREAM_TIMEOUT_MS]
    timeouts += [cv2.CAP_PROP_READ_TIMEOUT_MSEC, STREAM_TIMEOUT_MS]
    try:
        capture = cv2.VideoCapture(source, cv2.CAP_ANY, timeouts)
    except cv2.error as error:
        raise DataError(f"{what}: cannot be opened ({error}).") from None
    if not capture.isOpened():
        capture.release()
        raise DataError(f"{what}: cannot be opened as a video.")
    return capture


def read_video_frames(
    capture: cv2.VideoCapture, every: int, source: str, relative: Path
) -> Iterator[Frame]:
    """Frames 0, `every`, 2 x `every`, ... of an opened capture; the others are grabbed,
    not decoded. Raises DataError after the last good frame if the video stops before the
    frame count its header declares (a truncated or corrupt file), or decodes nothing."""
    declared = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    index, kept = 0, 0
    try:
        while True:
            if index % every:
                if not capture.grab():
                    break
            else:
                ok, image = capture.read()
                if not ok or image is None:
                    break
                kept += 1
                yield Frame(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), source, index, relative)
            index += 1
    except cv2.error as error:
        raise DataError(f"{source}: the video broke at frame {index}: {error}") from None
    finally:
        capture.release()
    if not kept:
        raise DataError(f"{source}: no video frame could be decoded.")
    # One frame of slack: some containers count one frame more than they hold.
    if declared > 0 and index + 1 < declared:
        raise DataError(
            f"{source}: the video stopped at frame {index} of the {declared} its header "
            "declares (truncated or corrupt); the frames before it were classified."
        )


def iter_files(paths: Sequence[Path], on_error: ErrorHandler) -> Iterator[tuple[Path, Path]]:
    """(file, relative name) for each file argument and each image/video under a folder,
    in argument order (so skip messages come in the order the inputs were given).

    Files named on the command line are kept whatever their suffix (decoding decides);
    folders are searched recursively for the suffixes in IMAGE_SUFFIXES and VIDEO_SUFFIXES.
    """
    suffixes = IMAGE_SUFFIXES | VIDEO_SUFFIXES
    for path in paths:
        if path.is_dir():
            try:
                files = sorted(f for f in path.rglob("*") if f.suffix.lower() in suffixes)
            except OSError as error:
                on_error(Skipped(str(path), f"the folder cannot be listed ({error.strerror})."))
                continue
            files = [f for f in files if f.is_file()]
            if not files:
                on_error(Skipped(str(path), "no image or video files in this folder."))
            yield from ((file, file.relative_to(path)) for file in files)
        elif path.is_file():
            yield path, Path(path.name)
        else:
            on_error(Skipped(str(path), "not found."))


def iter_frames(
    paths: Sequence[Path],
    every: int,
    on_error: ErrorHandler,
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> Iterator[Frame]:
    """Every image, and every `every`-th video frame, of `paths`; failures reported."""
    if every < 1:
        raise DataError(f"--every must be at least 1, got {every}.")
    for path, relative in iter_files(paths, on_error):
        try:
            if path.suffix.lower() in VIDEO_SUFFIXES:
                capture = open_capture(str(path), str(path))
                yield from read_video_frames(capture, every, str(path), relative)
            else:
                yield Frame(read_image(path, max_pixels), str(path), None, relative)
        except (DataError, cv2.error, MemoryError, OSError) as error:
            on_error(Skipped(str(path), _reason(error, str(path))))


def stream_name(source: str) -> str:
    """How results and messages name `--source`: `camera 0`, or the URL or file as given."""
    return f"camera {source}" if source.isdigit() else source


def iter_stream(source: str, every: int = 1) -> Iterator[Frame]:
    """Frames of `--source`: a camera index (`0`), a URL (`rtsp://...`) or a video file.

    Raises:
        DataError: naming the source, when it cannot be opened or gives no frame (no
            camera, a dead stream); after the last good frame when it stops mid-way.
    """
    name = stream_name(source)
    try:
        capture = open_capture(int(source) if source.isdigit() else source, name)
    except DataError:
        if source.isdigit():
            raise DataError(
                f"--source {source}: no camera {source} could be opened (none attached, or in use)."
            ) from None
        raise DataError(
            f"--source {source}: cannot be opened as a video or stream (missing, down, or not "
            "a video)."
        ) from None
    stem = Path(source.split("?")[0]).stem or "stream"
    relative = Path(f"camera{source}" if source.isdigit() else stem)
    yield from read_video_frames(capture, every, name, relative)


def iter_source(source: str, every: int, on_error: ErrorHandler) -> Iterator[Frame]:
    """`iter_stream`, except that a stream that stops after its first frame is reported
    through `on_error` (the frames before it stand) instead of raised."""
    frames = iter_stream(source, every)
    try:
        yield next(frames)
    except DataError as error:  # no camera, or opened but not one frame: a dead stream
        message = str(error)
        if not message.startswith("--source"):
            message = f"--source {source}: {_reason(error, stream_name(source))}"
        raise DataError(message) from None
    try:
        yield from frames
    except DataError as error:
        name = stream_name(source)
        on_error(Skipped(name, _reason(error, name)))


def predict_frames(
    predictor: Predictor,
    frames: Iterable[Frame],
    on_error: ErrorHandler,
    faces: FaceMode = "auto",
    frames_per_call: int = 8,
) -> Iterator[FrameResult]:
    """Classify the faces of each frame, `frames_per_call` frames per `Predictor.predict`
    call (one session.run for all their faces): few enough that decoded full-HD frames stay
    small. A frame the predictor fails on is reported and skipped, the others kept.
    `Prediction.image_index` counts the frames read."""
    offset = 0
    for chunk in _chunks(frames, frames_per_call):
        try:
            results = _classify(predictor, chunk, faces, offset)
        except Exception:  # a bad frame: find it, keep the others
            results = []
            for index, frame in enumerate(chunk):
                try:
                    results.extend(_classify(predictor, [frame], faces, offset + index))
                except Exception as error:
                    reason = f"could not be classified ({type(error).__name__}: {error})"
                    on_error(Skipped(frame.source, reason, frame.frame))
        yield from results
        offset += len(chunk)


def predict_inputs(
    predictor: Predictor,
    paths: Sequence[Path],
    on_error: ErrorHandler,
    faces: FaceMode = "auto",
    every: int = 10,
    frames_per_call: int = 8,
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> Iterator[FrameResult]:
    """Classify the faces of every readable image and sampled video frame of `paths`.

    Results are yielded as they are made, so a caller can write them as it goes. Every
    input that fails is passed to `on_error` (a `Skipped`: source, reason, frame) instead.

    Example:
        >>> for result in predict_inputs(Predictor("model.onnx"), [Path("photos")], print):
        ...     print(result.frame.source, [p.label for p in result.predictions])
        ...     # doctest: +SKIP
    """
    frames = iter_frames(paths, every, on_error, max_pixels)
    yield from predict_frames(predictor, frames, on_error, faces, frames_per_call)


def _classify(
    predictor: Predictor, chunk: list[Frame], faces: FaceMode, offset: int
) -> list[FrameResult]:
    predictions = predictor.predict(
        [frame.pixels for frame in chunk], faces, sources=[frame.source for frame in chunk]
    )
    return [
        FrameResult(
            frame,
            [
                replace(p, frame=frame.frame, image_index=offset + index)
                for p in predictions
                if p.image_index == index
            ],
        )
        for index, frame in enumerate(chunk)
    ]


def _reason(error: BaseException, source: str) -> str:
    """The error's message without the `source: ` it may start with (the report adds it)."""
    if isinstance(error, MemoryError):
        return "not enough memory to decode it."
    message = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
    return message.removeprefix(f"{source}: ")


def _chunks(frames: Iterable[Frame], size: int) -> Iterator[list[Frame]]:
    iterator = iter(frames)
    while chunk := list(islice(iterator, size)):
        yield chunk
