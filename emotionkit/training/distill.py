"""Knowledge distillation (`train.distill`): an ONNX teacher's softened predictions in the targets.

The teacher is an emotionkit ONNX export run by onnxruntime on the host. Each train batch's
target becomes `(1 - alpha) * labels + alpha * softmax(teacher_logits / T)`, computed in the
`tf.data` pipeline after `data.augment` (`TeacherTargets` is the pipeline's `batch_targets`
hook), so the teacher scores exactly the flipped, cropped or MixUp-blended image the student
sees, and MixUp's already-mixed labels are mixed with the teacher's view of the blend.

Why mix the targets rather than add Hinton et al.'s (2015) second loss term
`T^2 * KL(softmax(teacher / T) || softmax(student / T))`: every `train.loss` takes target
distributions, so cross-entropy, focal, KL, label smoothing and class weights work unchanged,
and the model, its metrics and its export are untouched. For cross-entropy the mixed target
*is* the two-term loss, weighted (1 - alpha) and alpha, since cross-entropy is linear in its
target. The one difference: the student's softmax stays at T = 1, where Hinton's divides the
student's logits by T as well. Hinton's T^2 undoes the 1/T^2 that dividing the student's
logits puts on the soft term's gradients; with the student at T = 1 there is no such factor,
so none is applied. T > 1 then also softens the student's own predictions, a teacher-shaped
label smoothing (Yuan et al., CVPR 2020).

Without `data.augment` every epoch shows the teacher the same images, so their logits are
computed once per run and cached on disk (`cache_dir()/teacher/`), keyed by the data
fingerprint, the teacher file's SHA-256, the input shape and the class order. Batches find
their rows by each image's content hash, which holds under shuffling and oversampling alike.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from emotionkit.errors import RecipeError

if TYPE_CHECKING:
    from emotionkit.data.spec import DataSpec
    from emotionkit.data.types import LoadedData
    from emotionkit.training.spec import DistillSpec

FIELD = "train.distill.teacher"
# Images per onnxruntime call when the whole train split is scored for the cache: large
# enough to keep ORT's threads busy, small enough (48x48x1: 2.4 MB) to stay in cache memory.
CACHE_BATCH = 256
# Part of the cache key: bump it when what a cache file holds changes meaning.
CACHE_VERSION = 1


@dataclass(frozen=True)
class Teacher:
    """An opened teacher model: its onnxruntime session and its metadata's contract."""

    path: Path
    session: Any
    class_names: tuple[str, ...]
    image_size: int
    channels: int


def check_distill(spec: DistillSpec, data: DataSpec) -> None:
    """What `train.distill` needs, checked before a run directory exists.

    Raises:
        RecipeError: device augmentation (out of the teacher's reach), multi-label targets,
            a missing or unreadable teacher, or a teacher for another input size or channels.
    """
    if data.augment and data.augment_on == "device":
        raise RecipeError(
            "train.distill: the teacher must score each augmented image, but data.augment_on: "
            "device augments inside the compiled train step, out of its reach: set "
            "data.augment_on: host (or auto, which then picks host), or remove train.distill."
        )
    if data.targets == "multi_label":
        raise RecipeError(
            "train.distill: a teacher's softmax is one distribution over the classes, which "
            "cannot be mixed into data.targets: multi_label (multi-hot) targets: remove "
            "train.distill or use data.targets: single or distribution."
        )
    teacher = open_teacher(spec.teacher)
    check_teacher_input(teacher, data.image_size, data.channels)


def teacher_placement(placement: str, reason: str, tensorflow: bool) -> tuple[str, str]:
    """`data.augment_on: auto` resolved for a distilled run: `host`, where the teacher is.

    Raises:
        RecipeError: TensorFlow (tf.data, the host pipeline) is not installed.
    """
    if placement == "host":
        return placement, reason
    if not tensorflow:
        raise RecipeError(
            "train.distill with data.augment needs the host pipeline (tf.data), and TensorFlow "
            "is not installed here: install tensorflow, or remove data.augment."
        )
    return "host", "train.distill: the teacher scores the augmented images on the host"


def open_teacher(teacher: str) -> Teacher:
    """Open the teacher on the CPU and read its contract (classes, input size, channels).

    Raises:
        RecipeError: a missing file, not an emotionkit ONNX export, or a multi-label model.
    """
    from emotionkit.errors import DataError
    from emotionkit.predict.onnx_model import open_session

    try:  # a file, a run directory or a bundled name, resolved as `predict` resolves models
        session, info = open_session(teacher)
    except DataError as error:
        raise RecipeError(f"{FIELD}: {error}") from None
    if info.multi_label:
        raise RecipeError(
            f"{FIELD}: {info.path} is a multi-label model (one sigmoid per class); "
            "distillation needs a single-label teacher, whose softmax is a distribution."
        )
    return Teacher(info.path, session, info.class_names, info.image_size, info.channels)


def check_teacher_input(teacher: Teacher, image_size: int, channels: int) -> None:
    """The teacher must take the images the student takes: same size, same channels.

    Raises:
        RecipeError: naming `data.image_size` or `data.channels` and the teacher's value.
    """
    if teacher.image_size != image_size:
        raise RecipeError(
            f"data.image_size is {image_size}, but {FIELD} ({teacher.path.name}) takes "
            f"{teacher.image_size}x{teacher.image_size} images: set data.image_size: "
            f"{teacher.image_size}, or use a teacher trained at {image_size}."
        )
    if teacher.channels != channels:
        raise RecipeError(
            f"data.channels is {channels}, but {FIELD} ({teacher.path.name}) takes "
            f"{teacher.channels}-channel images: set data.channels: {teacher.channels}, or use "
            f"a teacher trained on {channels}-channel images."
        )


def class_columns(teacher_classes: tuple[str, ...], data_classes: list[str]) -> list[int]:
    """The teacher's logit column of each data class, in the data's order.

    Classes only the teacher has are dropped: the softmax over the data's classes is the
    teacher's distribution renormalised to them.

    Raises:
        RecipeError: a data class the teacher does not predict, naming `train.distill.teacher`.
    """
    missing = [name for name in data_classes if name not in teacher_classes]
    if missing:
        raise RecipeError(
            f"{FIELD}: the teacher predicts {list(teacher_classes)} but not the data's "
            f"class(es) {missing}: use a teacher trained on these classes, or rename them with "
            "data.class_map."
        )
    return [teacher_classes.index(name) for name in data_classes]


def run_teacher(session: Any, images: np.ndarray) -> np.ndarray:
    """The teacher's logits (N, K_teacher) for float32 NHWC 0-255 images: one ORT call."""
    feed = {"image": np.ascontiguousarray(images, dtype=np.float32)}
    (logits,) = session.run(["logits"], feed)
    return np.asarray(logits, dtype=np.float32)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, shifted by the row maximum so that exp never overflows.

    Not `evaluate.metrics.softmax`: the evaluate stage imports training, so training may not
    import it back (the acyclic import contract).
    """
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


class TeacherTargets:
    """The pipeline's `batch_targets` hook: a batch's images and targets -> mixed targets.

    NumPy in and out (the pipeline calls it through `tf.numpy_function`; onnxruntime releases
    the GIL while it runs, so parallel batches overlap).

    Args:
        session: the teacher's onnxruntime session.
        columns: the teacher's logit column of each data class (`class_columns`).
        alpha: the teacher's weight in the target.
        temperature: the teacher's softmax temperature.
        known: precomputed logits (data class order) by image content hash, for
            un-augmented train images; `None` runs the teacher on every batch.
    """

    def __init__(
        self,
        session: Any,
        columns: list[int],
        alpha: float,
        temperature: float,
        known: dict[str, np.ndarray] | None = None,
    ) -> None:
        self.session = session
        self.columns = columns
        self.alpha = float(alpha)
        self.temperature = float(temperature)
        self.known = known

    def logits(self, images: np.ndarray) -> np.ndarray:
        """The teacher's logits for a batch, in the data's class order."""
        if self.known is None:
            return run_teacher(self.session, images)[:, self.columns]
        from emotionkit.data.splits import content_hashes

        hashes = content_hashes(images.astype(np.uint8))  # un-augmented: whole 0-255 values
        unseen = [index for index, key in enumerate(hashes) if key not in self.known]
        if unseen:  # not in the train split: score them now (never the case in a run)
            fresh = run_teacher(self.session, images[unseen])[:, self.columns]
            self.known.update(zip((hashes[i] for i in unseen), fresh, strict=True))
        return np.stack([self.known[key] for key in hashes])

    def __call__(self, images: np.ndarray, targets: np.ndarray) -> np.ndarray:
        soft = softmax(self.logits(images) / self.temperature)
        return ((1.0 - self.alpha) * targets + self.alpha * soft).astype(np.float32)


def build_teacher_targets(
    spec: DistillSpec, data: LoadedData, *, augmented: bool
) -> TeacherTargets:
    """The recipe's `train.distill` as the train pipeline's `batch_targets` hook.

    Args:
        spec: the recipe's `train.distill`.
        data: the loaded splits (class names, fingerprint, train images).
        augmented: `data.augment` is set: the teacher then scores every batch as it comes;
            else the train split's logits are computed once (or read from the cache).

    Raises:
        RecipeError: the teacher misses a data class, or takes another image shape.

    Example:
        >>> teacher = build_teacher_targets(recipe.train.distill, data, augmented=False)
        >>> build_dataset(train, 7, 32, training=True, seed=0, batch_targets=teacher)
    """
    teacher = open_teacher(spec.teacher)
    _, height, _, channels = data.splits["train"].images.shape
    check_teacher_input(teacher, height, channels)
    columns = class_columns(teacher.class_names, data.class_names)
    known = None if augmented else train_split_logits(teacher, columns, data)
    return TeacherTargets(teacher.session, columns, spec.alpha, spec.temperature, known)


def train_split_logits(
    teacher: Teacher, columns: list[int], data: LoadedData
) -> dict[str, np.ndarray]:
    """The teacher's logits of every train image by content hash, from the cache if present.

    A cache file is used only when it lists exactly these images; otherwise the split is
    scored and the file (re)written. Data without a fingerprint is scored, not cached.
    """
    from emotionkit.data.decode import save_npz_atomically
    from emotionkit.data.splits import content_hashes

    images = data.splits["train"].images
    hashes = content_hashes(images)
    path = teacher_cache_path(teacher.path, data.fingerprint, images.shape[1:], data.class_names)
    logits = _read_cached(path, hashes) if path is not None else None
    if logits is None:
        logits = np.concatenate(
            [
                run_teacher(teacher.session, images[start : start + CACHE_BATCH])
                for start in range(0, len(images), CACHE_BATCH)
            ]
        )[:, columns]
        if path is not None:
            save_npz_atomically(path, hashes=np.asarray(hashes), logits=logits)
    return dict(zip(hashes, logits, strict=True))


def teacher_cache_path(
    teacher_file: Path, fingerprint: str, image_shape: tuple[int, ...], class_names: list[str]
) -> Path | None:
    """`cache_dir()/teacher/<key>.npz`: a new data fingerprint or teacher is a new key."""
    from emotionkit.data.decode import cache_dir

    if not fingerprint:
        return None
    key = json.dumps(
        {
            "version": CACHE_VERSION,
            "data": fingerprint,
            "teacher": file_sha256(teacher_file),
            "input": [int(size) for size in image_shape],
            "classes": list(class_names),
        },
        sort_keys=True,
    )
    return cache_dir() / "teacher" / f"{hashlib.sha256(key.encode()).hexdigest()[:20]}.npz"


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(2**20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_cached(path: Path, hashes: list[str]) -> np.ndarray | None:
    """The cached logits when the file exists, reads and lists exactly `hashes`."""
    if not path.is_file():
        return None
    try:
        with np.load(path) as stored:
            if stored["hashes"].tolist() != hashes:
                return None
            return np.asarray(stored["logits"], dtype=np.float32)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None  # a torn or foreign file: score again and overwrite it
