"""Contract tests for the synthetic face generator (NumPy only, runs in well under a second)."""

from __future__ import annotations

import numpy as np
import pytest

from emotionkit.data.synthetic import FER_CLASSES, generate_synthetic_faces


def test_class_names_follow_fer_order() -> None:
    assert FER_CLASSES == ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")


@pytest.mark.parametrize("image_size", [32, 48, 64])
def test_shapes_and_dtypes(image_size: int) -> None:
    images, labels = generate_synthetic_faces(20, seed=0, image_size=image_size)
    assert images.shape == (20, image_size, image_size, 1)
    assert images.dtype == np.uint8
    assert labels.shape == (20,)
    assert labels.dtype == np.int32


def test_default_image_size_is_48() -> None:
    images, _ = generate_synthetic_faces(3, seed=0)
    assert images.shape == (3, 48, 48, 1)


def test_same_seed_gives_identical_bytes() -> None:
    # 300 spans several drawing chunks, including a partial last one.
    first = generate_synthetic_faces(300, seed=7)
    np.random.seed(123)  # global NumPy state must not leak in
    np.random.default_rng(999).random(10)
    second = generate_synthetic_faces(300, seed=7)
    assert first[0].tobytes() == second[0].tobytes()
    assert first[1].tobytes() == second[1].tobytes()


def test_different_seeds_give_different_data() -> None:
    images_a, labels_a = generate_synthetic_faces(50, seed=1)
    images_b, labels_b = generate_synthetic_faces(50, seed=2)
    assert not np.array_equal(images_a, images_b)
    assert not np.array_equal(labels_a, labels_b)


@pytest.mark.parametrize("num_images", [1, 6, 7, 50, 141, 300])
def test_labels_are_balanced_and_valid(num_images: int) -> None:
    _, labels = generate_synthetic_faces(num_images, seed=3)
    counts = np.bincount(labels, minlength=len(FER_CLASSES))
    assert len(counts) == len(FER_CLASSES)
    assert np.all(np.abs(counts - num_images / len(FER_CLASSES)) <= 1)


def test_labels_are_shuffled() -> None:
    _, labels = generate_synthetic_faces(70, seed=4)
    assert not np.array_equal(labels, np.arange(70) % len(FER_CLASSES))


def test_pixels_span_a_real_range() -> None:
    images, _ = generate_synthetic_faces(70, seed=5)
    flat = images.reshape(len(images), -1).astype(np.float32)
    assert flat.max() - flat.min() > 150
    # Every image has visible structure (a face with features), not a flat fill.
    assert np.all(flat.max(axis=1) - flat.min(axis=1) > 60)
    assert np.all(flat.std(axis=1) > 5)


def test_classes_look_different_on_average() -> None:
    images, labels = generate_synthetic_faces(700, seed=6)
    means = np.stack([images[labels == k].mean(axis=0) for k in range(len(FER_CLASSES))])
    gaps = [np.abs(means[i] - means[j]).mean() for i in range(7) for j in range(i + 1, 7)]
    assert min(gaps) > 0.5


def test_zero_images() -> None:
    images, labels = generate_synthetic_faces(0, seed=0, image_size=32)
    assert images.shape == (0, 32, 32, 1)
    assert labels.shape == (0,)


@pytest.mark.parametrize(("num_images", "image_size"), [(-1, 48), (4, 4)])
def test_invalid_arguments_raise(num_images: int, image_size: int) -> None:
    with pytest.raises(ValueError):
        generate_synthetic_faces(num_images, seed=0, image_size=image_size)


def test_a_linear_model_does_not_solve_it() -> None:
    """The task must need a CNN: logistic regression on raw pixels stays far from solved."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    train_x, train_y = generate_synthetic_faces(1400, seed=11, image_size=32)
    test_x, test_y = generate_synthetic_faces(700, seed=12, image_size=32)
    model = LogisticRegression(max_iter=100)
    with warnings.catch_warnings():  # an unconverged fit only flatters the linear model less
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(train_x.reshape(len(train_x), -1) / 255.0, train_y)
    accuracy = model.score(test_x.reshape(len(test_x), -1) / 255.0, test_y)
    assert 1 / 7 < accuracy < 0.60
