"""How a detector's box must be grown to give the crop training saw, and what that and eye
alignment are worth to the bundled model.

    python benchmarks/face_crop_calibration.py --data ../shared/data/fer2013/train \
        [--per-class 40] [--out benchmarks/results/face_crop_calibration.json]

FER2013 faces (48x48) are enlarged to 144 px and set in a 432 px scene (edges repeated
outwards), optionally turned by a random angle up to `--max-angle` degrees about the face
centre. Each detector is run on the scene; for the detection nearest the face centre:

1. calibration (upright scenes): the FER crop's side over the box's longer side, and the
   offset of the crop centre from the box centre (fractions of the longer side). The median
   side ratio r gives the margin (r - 1) / 2 each side; the median vertical offset the shift.
2. accuracy of the bundled model against the FER2013 label, on upright and turned scenes,
   with the calibrated crop with and without eye alignment, and with the 10 % margin used
   before. Most of these faces were in the bundled model's training split, so the absolute
   accuracy is inflated; the differences between crop policies are what this measures.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from emotionkit.bundled import bundled_model_path
from emotionkit.image_decode import read_image_file
from emotionkit.predict import CropPolicy, Predictor, build_detector, face_crop
from emotionkit.predict.faces import Detection, find_faces

SCALE, SCENE = 3, 432  # the 48 px face becomes 144 px in the middle of a 432 px scene


def scene(face: np.ndarray, angle: float) -> np.ndarray:
    """`face` enlarged and set in the middle of a scene, turned by `angle` degrees."""
    big = cv2.resize(face, None, fx=SCALE, fy=SCALE, interpolation=cv2.INTER_CUBIC)
    pad = (SCENE - big.shape[0]) // 2
    image = cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    if angle:
        matrix = cv2.getRotationMatrix2D((SCENE / 2, SCENE / 2), angle, 1.0)
        image = cv2.warpAffine(image, matrix, (SCENE, SCENE), borderMode=cv2.BORDER_REPLICATE)
    return image


def central(faces: list[Detection]) -> Detection | None:
    def distance(face: Detection) -> float:
        x, y, w, h = face.box
        return math.hypot(x + w / 2 - SCENE / 2, y + h / 2 - SCENE / 2)

    close = [f for f in faces if distance(f) < 48 * SCALE / 3]
    return min(close, key=distance) if close else None


def load_faces(data: Path, per_class: int, seed: int) -> tuple[list[np.ndarray], list[str]]:
    rng = np.random.default_rng(seed)
    faces, labels = [], []
    for folder in sorted(p for p in data.iterdir() if p.is_dir()):
        files = sorted(folder.glob("*.png")) + sorted(folder.glob("*.jpg"))
        for index in rng.choice(len(files), size=min(per_class, len(files)), replace=False):
            pixels = read_image_file(files[index])
            if pixels.std() > 5:  # FER2013 has blank images
                faces.append(pixels)
                labels.append(folder.name)
    return faces, labels


def calibrate(detector: Any, faces: list[np.ndarray]) -> dict[str, Any]:
    ratios, dx, dy, found = [], [], [], 0
    for face in faces:
        detection = central(find_faces(detector, scene(face, 0.0)))
        if detection is None:
            continue
        found += 1
        x, y, w, h = detection.box
        side = max(w, h)
        ratios.append(48 * SCALE / side)
        dx.append((SCENE / 2 - (x + w / 2)) / side)
        dy.append((SCENE / 2 - (y + h / 2)) / side)
    ratio = statistics.median(ratios)
    return {
        "found": found,
        "of": len(faces),
        "crop_side_over_box_side": ratio,
        "margin": (ratio - 1) / 2,
        "centre_offset_x": statistics.median(dx),
        "centre_offset_y": statistics.median(dy),
        "shift": -statistics.median(dy) / ratio,  # of the crop side, upwards
    }


def accuracy(
    predictor: Predictor,
    detector: Any,
    scenes: list[np.ndarray],
    labels: list[str],
    policies: dict[str, tuple[CropPolicy, float]],
) -> dict[str, Any]:
    correct = dict.fromkeys(policies, 0)
    found = 0
    for image, label in zip(scenes, labels, strict=True):
        detection = central(find_faces(detector, image))
        if detection is None:
            continue
        found += 1
        crops = [
            face_crop(image, detection, policy, margin) for policy, margin in policies.values()
        ]
        for name, prediction in zip(policies, predictor.predict(crops, faces="none"), strict=True):
            correct[name] += prediction.label == label
    return {
        "found": found,
        "of": len(scenes),
        "accuracy_of_found": {name: count / max(1, found) for name, count in correct.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/fer2013/train"))
    parser.add_argument("--per-class", type=int, default=40)
    parser.add_argument("--max-angle", type=float, default=25.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", type=Path, default=Path("benchmarks/results/face_crop_calibration.json")
    )
    args = parser.parse_args()
    started = time.time()
    faces, labels = load_faces(args.data, args.per_class, args.seed)
    rng = np.random.default_rng(args.seed + 1)
    angles = rng.uniform(-args.max_angle, args.max_angle, size=len(faces))
    upright = [scene(face, 0.0) for face in faces]
    turned = [scene(face, float(a)) for face, a in zip(faces, angles, strict=True)]
    predictor = Predictor(bundled_model_path(), detector="none")
    results: dict[str, Any] = {}
    for name in ("mtcnn", "haar"):
        detector = build_detector(name)
        calibration = calibrate(detector, faces)
        margin = calibration["margin"]
        policies = {
            "margin_10pct_square": (CropPolicy(align=False), 0.1),
            "calibrated": (CropPolicy(align=False), margin),
            "calibrated_aligned_above_1deg": (CropPolicy(min_tilt=1.0), margin),
            "calibrated_aligned_above_5deg": (CropPolicy(min_tilt=5.0), margin),
            "calibrated_aligned_above_10deg": (CropPolicy(min_tilt=10.0), margin),
        }
        results[name] = {
            "calibration": calibration,
            "upright": accuracy(predictor, detector, upright, labels, policies),
            "turned": accuracy(predictor, detector, turned, labels, policies),
        }
        print(name, json.dumps(results[name], indent=1))
    report = {
        "command": "python benchmarks/face_crop_calibration.py --data "
        f"{args.data} --per-class {args.per_class} --max-angle {args.max_angle}",
        "machine": platform.machine(),
        "faces": len(faces),
        "max_angle_degrees": args.max_angle,
        "note": "faces from FER2013 train: most were in the bundled model's training split, "
        "so accuracies are inflated; compare policies, not absolute values",
        "detectors": results,
        "wall_seconds": time.time() - started,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(args.out)


if __name__ == "__main__":
    main()
