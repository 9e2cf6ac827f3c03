"""`--smooth`: faces followed across the frames of a video or stream, their probabilities
averaged over time, so a label does not flicker from one frame to the next.

Each face is matched to the track whose last box overlaps it most (intersection over union,
greedily, best pair first); a face that overlaps no track starts one. A track's probabilities
are an exponential moving average, `weight * this frame + (1 - weight) * before`, and its
label is read from the average (by the predictor's own rules: uncertain, multi-label).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace

import numpy as np

from emotionkit.predict.faces import Box
from emotionkit.predict.inputs import FrameResult
from emotionkit.predict.predictor import Prediction

# 0.4 of the new frame: a one-frame flip to another class (0.9 vs 0.05) moves the average
# less than halfway, so the label holds; a change that lasts two frames goes through.
DEFAULT_WEIGHT = 0.4
# Boxes of one face on consecutive sampled frames overlap more than this even when it moves
# a third of its width; two different faces side by side overlap less.
MIN_IOU = 0.3
# A track whose face is missed on more sampled frames than this in a row is forgotten.
MAX_MISSED = 5

Labeller = Callable[..., Prediction]


@dataclass
class _Track:
    box: Box
    probabilities: np.ndarray
    missed: int = 0


def box_iou(first: Box, second: Box) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    ax, ay, aw, ah = first
    bx, by, bw, bh = second
    width = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    height = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = width * height
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


class FaceTracker:
    """Tracks and smooths the faces of one video or stream at a time (a new source resets).

    Args:
        labelled: Makes a Prediction from smoothed probabilities: `Predictor.labelled`.
        weight: The new frame's share of the moving average, in (0, 1]; 1 is no smoothing.
        min_iou: Least overlap for a face to continue a track.
        max_missed: Sampled frames a track survives without its face.
    """

    def __init__(
        self,
        labelled: Labeller,
        weight: float = DEFAULT_WEIGHT,
        min_iou: float = MIN_IOU,
        max_missed: int = MAX_MISSED,
    ) -> None:
        if not 0 < weight <= 1:
            raise ValueError(f"the smoothing weight must be in (0, 1], got {weight}.")
        self.labelled, self.weight = labelled, weight
        self.min_iou, self.max_missed = min_iou, max_missed
        self.tracks: dict[int, _Track] = {}
        self.next_id = 1
        self.source: str | None = None

    def update(self, result: FrameResult) -> FrameResult:
        """`result` with each face's track id and smoothed probabilities and label."""
        if result.frame.frame is None:  # a still image: nothing to follow
            return result
        if result.frame.source != self.source:
            self.source, self.tracks, self.next_id = result.frame.source, {}, 1
        height, width = result.frame.pixels.shape[:2]
        faces = [
            (index, p.box or (0, 0, width, height))
            for index, p in enumerate(result.predictions)
            if p.label is not None
        ]
        matches = self._match(faces)
        predictions = list(result.predictions)
        seen = set()
        for index, box in faces:
            new = np.array(list(predictions[index].probabilities.values()), np.float64)
            track_id = matches.get(index)
            if track_id is None:
                track_id, self.next_id = self.next_id, self.next_id + 1
                self.tracks[track_id] = _Track(box, new)
            else:
                track = self.tracks[track_id]
                track.probabilities = self.weight * new + (1 - self.weight) * track.probabilities
                track.box, track.missed = box, 0
            predictions[index] = self._smoothed(predictions[index], track_id)
            seen.add(track_id)
        self._forget(seen)
        return replace(result, predictions=predictions)

    def _match(self, faces: list[tuple[int, Box]]) -> dict[int, int]:
        """Face index -> track id, greedily by overlap, best pair first."""
        pairs = sorted(
            (
                (box_iou(track.box, box), index, track_id)
                for index, box in faces
                for track_id, track in self.tracks.items()
            ),
            reverse=True,
        )
        matches: dict[int, int] = {}
        for overlap, index, track_id in pairs:
            if overlap < self.min_iou:
                break
            if index not in matches and track_id not in matches.values():
                matches[index] = track_id
        return matches

    def _forget(self, seen: set[int]) -> None:
        for track_id in list(self.tracks):
            if track_id in seen:
                continue
            self.tracks[track_id].missed += 1
            if self.tracks[track_id].missed > self.max_missed:
                del self.tracks[track_id]

    def _smoothed(self, prediction: Prediction, track_id: int) -> Prediction:
        names = list(prediction.probabilities)
        values = self.tracks[track_id].probabilities
        smoothed = {name: float(value) for name, value in zip(names, values, strict=True)}
        return self.labelled(
            smoothed,
            box=prediction.box,
            source=prediction.source,
            frame=prediction.frame,
            image_index=prediction.image_index,
            score=prediction.score,
            track=track_id,
            landmarks=prediction.landmarks,
        )


def smooth_results(
    results: Iterable[FrameResult], labelled: Labeller, weight: float = DEFAULT_WEIGHT
) -> Iterator[FrameResult]:
    """`results` with the faces of each video or stream tracked and smoothed (`--smooth`)."""
    tracker = FaceTracker(labelled, weight)
    for result in results:
        yield tracker.update(result)
