"""What `emotionkit predict` writes: a Rich table, JSON Lines or CSV, annotated copies."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from rich.table import Table
from rich.text import Text

from emotionkit.errors import DataError
from emotionkit.predict.faces import Box
from emotionkit.predict.inputs import FrameResult
from emotionkit.predict.predictor import Prediction

RESULT_SUFFIXES = (".jsonl", ".csv")
# Annotated copies of smaller images are upscaled to this side so the label text is legible.
ANNOTATE_MIN_SIDE = 256
BOX_COLOUR = (0, 200, 0)  # BGR
NO_FACE_COLOUR = (0, 0, 230)
CSV_FIELDS = ("source", "frame", "box_x", "box_y", "box_w", "box_h", "label", "probability")


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
        probability = f"{p.probabilities[p.label]:.3f}"
        table.add_row(source, box_text(p.box), Text(p.label), probability, Text(top2))
    return table


def prediction_record(prediction: Prediction) -> dict[str, Any]:
    """One JSON Lines record: box is [x, y, w, h] or null (whole image / no face)."""
    label = prediction.label
    return {
        "source": prediction.source,
        "frame": prediction.frame,
        "box": None if prediction.box is None else list(prediction.box),
        "label": label,
        "probability": None if label is None else prediction.probabilities[label],
        "probabilities": prediction.probabilities,
    }


def write_results(
    predictions: Sequence[Prediction], path: Path, class_names: Sequence[str]
) -> None:
    """JSON Lines or CSV by `path`'s suffix; CSV has one probability column per class."""
    check_results_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".jsonl":
        lines = (json.dumps(prediction_record(p)) + "\n" for p in predictions)
        path.write_text("".join(lines), encoding="utf-8")
        return
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*CSV_FIELDS, *class_names])
        writer.writeheader()
        writer.writerows(_csv_row(p) for p in predictions)


def _csv_row(prediction: Prediction) -> dict[str, Any]:
    """A flat CSV row: empty cells where JSON Lines has null."""
    record = prediction_record(prediction)
    row = {key: record[key] for key in ("source", "frame", "label", "probability")}
    row.update(zip(("box_x", "box_y", "box_w", "box_h"), record["box"] or ("",) * 4, strict=True))
    row.update(prediction.probabilities)
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
        text = f"{p.label} {p.probabilities[p.label]:.2f}"
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
