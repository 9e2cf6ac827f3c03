"""What `emotionkit predict` writes: a Rich table, JSON Lines or CSV, annotated copies.

`ResultWriter` writes each frame's rows as soon as it is classified and flushes them, so a
crash or Ctrl-C keeps everything done so far; inputs that failed get a row with `error`.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import cv2
import numpy as np
from rich.table import Table
from rich.text import Text

from emotionkit.errors import DataError
from emotionkit.predict.faces import Box
from emotionkit.predict.inputs import FrameResult, Skipped
from emotionkit.predict.predictor import Prediction

RESULT_SUFFIXES = (".jsonl", ".csv")
# Annotated copies of smaller images are upscaled to this side so the label text is legible.
ANNOTATE_MIN_SIDE = 256
BOX_COLOUR = (0, 200, 0)  # BGR
NO_FACE_COLOUR = (0, 0, 230)
CSV_FIELDS = ("source", "frame", "box_x", "box_y", "box_w", "box_h", "label", "probability")
# After the above, before the class columns: the multi-label labels, the --smooth track,
# why an input was skipped, the detector's confidence and landmarks ("x y;x y;...").
CSV_EXTRA_FIELDS = ("labels", "track", "error", "face_score", "landmarks")


def check_results_path(path: Path) -> None:
    """Fail before any work if `--out` names a format we cannot write."""
    if path.suffix.lower() not in RESULT_SUFFIXES:
        raise DataError(f"{path}: --out must end in .jsonl or .csv.")


def source_name(prediction: Prediction) -> str:
    """The file, with `#frame` for a video frame."""
    name = prediction.source or f"image {prediction.image_index}"
    return name if prediction.frame is None else f"{name}#{prediction.frame}"


def box_text(box: Box | None) -> str:
    return "whole image" if box is None else "{},{},{},{}".format(*box)


def results_table(predictions: Sequence[Prediction]) -> Table:
    """File, face box, label, probability and top-2, one row per prediction."""
    table = Table("file")
    table.add_column("face box x,y,w,h", no_wrap=True)
    table.add_column("label")
    table.add_column("probability", justify="right")
    table.add_column("top-2")
    for p in predictions:
        source = Text(source_name(p))  # Text, not str: "[...]" in a file name is not markup
        if p.label is None:
            table.add_row(source, "-", Text("no face found", style="red"), "", "")
            continue
        top2 = ", ".join(f"{name} {prob:.2f}" for name, prob in p.top(2))
        probability = f"{p.probability:.3f}"
        table.add_row(source, box_text(p.box), Text(label_text(p)), probability, Text(top2))
    return table


def label_text(prediction: Prediction) -> str:
    """The label, the classes above threshold for a multi-label model, `#track` if tracked."""
    text = str(prediction.label)
    if prediction.labels is not None:
        text = "+".join(prediction.labels) or "(none above threshold)"
    return text if prediction.track is None else f"{text} #{prediction.track}"


def prediction_record(prediction: Prediction) -> dict[str, Any]:
    """One JSON Lines record: box is [x, y, w, h] or null (whole image / no face);
    `labels` (multi-label models), `track` (--smooth), the detector's `face_score` and
    `landmarks` ([[x, y], ...], MTCNN's five points) only when set."""
    record: dict[str, Any] = {
        "source": prediction.source,
        "frame": prediction.frame,
        "box": None if prediction.box is None else list(prediction.box),
        "label": prediction.label,
        "probability": prediction.probability,
        "probabilities": prediction.probabilities,
    }
    if prediction.labels is not None:
        record["labels"] = list(prediction.labels)
    if prediction.track is not None:
        record["track"] = prediction.track
    if prediction.score is not None:
        record["face_score"] = round(prediction.score, 4)
    if prediction.landmarks is not None:
        record["landmarks"] = landmark_points(prediction)
    return record


def landmark_points(prediction: Prediction) -> list[list[float]]:
    """The detector's landmarks as `[[x, y], ...]` to 0.1 px, as `predict --out` and `serve`
    answer them (empty without landmarks)."""
    return [[round(x, 1), round(y, 1)] for x, y in prediction.landmarks or ()]


def skipped_record(skipped: Skipped) -> dict[str, Any]:
    """The record of an input that could not be classified: its `error`, no label."""
    return {
        "source": skipped.source,
        "frame": skipped.frame,
        "box": None,
        "label": None,
        "probability": None,
        "probabilities": {},
        "error": skipped.reason,
    }


class ResultWriter:
    """JSON Lines or CSV by `path`'s suffix, written and flushed a frame at a time.

    CSV has one probability column per class, after `CSV_FIELDS` and `CSV_EXTRA_FIELDS`.
    Use it as a context manager: the file is closed however the run ends.
    """

    def __init__(self, path: Path, class_names: Sequence[str]) -> None:
        check_results_path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.handle: IO[str] = path.open("w", newline="", encoding="utf-8")
        self.csv: csv.DictWriter[str] | None = None
        if path.suffix.lower() == ".csv":
            fields = [*CSV_FIELDS, *CSV_EXTRA_FIELDS, *class_names]
            self.csv = csv.DictWriter(self.handle, fieldnames=fields)
            self.csv.writeheader()
            self.handle.flush()

    def write(self, predictions: Sequence[Prediction]) -> None:
        """The rows of one frame, flushed to the file."""
        self._rows([prediction_record(p) for p in predictions])

    def skipped(self, skipped: Skipped) -> None:
        """The row of an input (or frame) that was skipped, with its reason."""
        self._rows([skipped_record(skipped)])

    def _rows(self, records: list[dict[str, Any]]) -> None:
        if self.csv is None:
            self.handle.write("".join(json.dumps(r) + "\n" for r in records))
        else:
            self.csv.writerows(_csv_row(r) for r in records)
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def write_results(
    predictions: Sequence[Prediction], path: Path, class_names: Sequence[str]
) -> None:
    """All `predictions` to a JSON Lines or CSV file at once (see `ResultWriter`)."""
    with ResultWriter(path, class_names) as writer:
        writer.write(predictions)


def _csv_row(record: dict[str, Any]) -> dict[str, Any]:
    """A flat CSV row: empty cells where JSON Lines has null."""
    row = {key: record[key] for key in ("source", "frame", "label", "probability")}
    row.update(zip(("box_x", "box_y", "box_w", "box_h"), record["box"] or ("",) * 4, strict=True))
    row["labels"] = ";".join(record.get("labels", []))
    row["track"] = record.get("track", "")
    row["error"] = record.get("error", "")
    row["face_score"] = record.get("face_score", "")
    row["landmarks"] = ";".join(f"{x} {y}" for x, y in record.get("landmarks", []))
    row.update(record["probabilities"])
    return row


class Annotator:
    """Writes each frame with its face boxes and labels drawn into `out_dir`.

    Image files keep their path relative to the folder argument; video frames become
    `<video stem>_frame<index>.jpg`. Names that two inputs share get a `_2`, `_3` suffix.
    """

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.written: set[Path] = set()

    def write(self, result: FrameResult) -> Path:
        path = self._unique(self._target(result))
        path.parent.mkdir(parents=True, exist_ok=True)
        ok, encoded = cv2.imencode(path.suffix, draw_predictions(result))
        if not ok:
            raise DataError(f"{path}: OpenCV could not encode the annotated image.")
        encoded.tofile(path)
        return path

    def _target(self, result: FrameResult) -> Path:
        relative = result.frame.relative
        if result.frame.frame is not None:
            return self.out_dir / relative.with_name(
                f"{relative.stem}_frame{result.frame.frame:06d}.jpg"
            )
        suffix = relative.suffix.lower()
        keep = suffix in {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
        return self.out_dir / (relative if keep else relative.with_suffix(".png"))

    def _unique(self, path: Path) -> Path:
        candidate, count = path, 1
        while candidate in self.written:
            count += 1
            candidate = path.with_name(f"{path.stem}_{count}{path.suffix}")
        self.written.add(candidate)
        return candidate


def draw_predictions(result: FrameResult) -> np.ndarray:
    """A BGR copy of the frame with a box and `label prob` per face (upscaled if small)."""
    pixels = result.frame.pixels
    scale = max(1, math.ceil(ANNOTATE_MIN_SIDE / max(pixels.shape[:2])))
    image = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    if scale > 1:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    font = max(0.4, min(image.shape[:2]) / 600)
    thick = max(1, round(font * 2))
    for p in result.predictions:
        if p.label is None:
            _put_text(image, "no face found", (4, 4), font, thick, NO_FACE_COLOUR)
            continue
        text = f"{label_text(p)} {p.probability:.2f}"
        if p.box is None:
            _put_text(image, text, (4, 4), font, thick, BOX_COLOUR)
            continue
        x, y, w, h = (v * scale for v in p.box)
        cv2.rectangle(image, (x, y), (x + w, y + h), BOX_COLOUR, thick)
        _put_text(image, text, (x, y), font, thick, BOX_COLOUR)
    return image


def _put_text(
    image: np.ndarray, text: str, corner: tuple[int, int], font: float, thick: int, colour: Any
) -> None:
    """Text on a filled background just above `corner` (below it at the top edge)."""
    (width, height), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font, thick)
    x, y = corner
    top = y - height - base - 4 if y - height - base - 4 >= 0 else y
    cv2.rectangle(image, (x, top), (x + width + 4, top + height + base + 4), colour, cv2.FILLED)
    origin = (x + 2, top + height + 2)
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, font, (255, 255, 255), thick)
