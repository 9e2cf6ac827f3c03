"""Face detectors on real photographs: faces found, false faces, and time per 640x480 frame.

    python benchmarks/face_detectors.py [--photos ../shared/data/photos] [--repeats 30] \
        [--out benchmarks/results/face_detectors.json]

For each detector of `emotionkit predict --detector` (haar; mtcnn when installed):

- on the deepface test photos (shared/data/photos, MIT): the clear faces found (of those
  listed in tests/data/photo_faces.json), the cut-off faces found, and the false faces (a
  detection near no listed face);
- the median time of the detector alone, and of `Predictor.predict` (detection, crops and
  the bundled model), on one 640x480 frame: the group selfie scaled to 640x480 (7 faces),
  after 3 warm-up runs, in this process, on this machine's CPU threads. The load average
  is recorded: on a shared machine the times are upper bounds.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import cv2

from emotionkit.bundled import bundled_model_path
from emotionkit.predict import Predictor, build_detector, read_image
from emotionkit.predict.faces import find_faces
from emotionkit.predict.mtcnn import mtcnn_weights_dir

TRUTH = Path(__file__).resolve().parent.parent / "tests" / "data" / "photo_faces.json"
FRAME = (640, 480)


def near(box: tuple[int, int, int, int], point: list[float]) -> bool:
    x, y, w, h = box
    return math.hypot(x + w / 2 - point[0], y + h / 2 - point[1]) < max(w, h) / 3


def score_photos(detector: Any, photos: Path) -> dict[str, Any]:
    truth = json.loads(TRUTH.read_text())["photos"]
    totals = {"clear": 0, "clear_found": 0, "cut": 0, "cut_found": 0, "false": 0}
    per_photo = {}
    for name, faces in truth.items():
        boxes = [face.box for face in find_faces(detector, read_image(photos / name))]
        clear = sum(any(near(b, p) for b in boxes) for p in faces["clear"])
        cut = sum(any(near(b, p) for b in boxes) for p in faces["cut"])
        false = sum(not any(near(b, p) for p in faces["clear"] + faces["cut"]) for b in boxes)
        per_photo[name] = {"detections": len(boxes), "clear_found": clear, "false": false}
        totals["clear"] += len(faces["clear"])
        totals["cut"] += len(faces["cut"])
        totals["clear_found"] += clear
        totals["cut_found"] += cut
        totals["false"] += false
    return {**totals, "clear_recall": totals["clear_found"] / totals["clear"], "photos": per_photo}


def median_ms(run: Any, repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=Path, default=Path("../shared/data/photos"))
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/face_detectors.json"))
    args = parser.parse_args()
    load = os.getloadavg()
    selfie = read_image(args.photos / "deepface_selfie-many-people.jpg")
    frame = cv2.resize(selfie, FRAME, interpolation=cv2.INTER_AREA)
    names = ["haar"] + (["mtcnn"] if mtcnn_weights_dir() is not None else [])
    results = {}
    for name in names:
        detector = build_detector(name)
        predictor = Predictor(bundled_model_path(), detector=detector)
        results[name] = {
            **score_photos(detector, args.photos),
            "frame_faces": len(find_faces(detector, frame)),
            "detect_ms_640x480": median_ms(lambda d=detector: find_faces(d, frame), args.repeats),
            "predict_ms_640x480": median_ms(lambda p=predictor: p.predict(frame), args.repeats),
        }
        shown = {k: v for k, v in results[name].items() if k != "photos"}
        print(name, json.dumps(shown))
    report = {
        "command": f"python benchmarks/face_detectors.py --repeats {args.repeats}",
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_average_at_start": load,
        "frame": "shared/data/photos/deepface_selfie-many-people.jpg scaled to 640x480",
        "detectors": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(args.out)


if __name__ == "__main__":
    main()
