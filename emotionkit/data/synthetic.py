"""Deterministic synthetic FER-style faces, drawn with vectorised NumPy.

The generator exists so that training, evaluation and export can be tested end to end
without downloading FER-2013. Each class is a cartoon face whose expression cues (mouth
curvature and opening, eyebrow height/slant/arch, eye opening, nose wrinkle) follow the
class, while pose, scale, lighting and noise vary at random. The nuisance variation is
strong enough that a linear model on raw pixels fails, yet the cues are local and
high-contrast, so a tiny CNN learns them in a few epochs.

Everything is drawn from one ``np.random.default_rng(seed)`` in a fixed order, so the
same ``(num_images, seed, image_size)`` always gives byte-identical arrays. No TensorFlow
or Keras import happens here, which keeps the module cheap to import in tests.
"""

from __future__ import annotations

import numpy as np

FER_CLASSES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")

# Per-class expression cues, in face units (face half-height == 1, v grows downwards).
# Columns: eye_open, brow_y, brow_slope, brow_arch, mouth_w, mouth_curve, mouth_open,
# mouth_tilt, wrinkle. brow_slope > 0 raises the inner brow end; mouth_curve < 0 lifts
# the mouth corners (smile); mouth_tilt skews the mouth (a one-sided sneer).
_CUES = np.array(
    [
        [0.060, -0.36, -0.90, 0.0, 0.22, 0.0, 0.00, 0.0, 0.0],  # angry
        [0.055, -0.38, -0.45, 0.0, 0.26, 0.6, 0.06, 0.45, 1.0],  # disgust
        [0.140, -0.58, 0.75, 0.0, 0.36, 0.8, 0.14, 0.0, 0.0],  # fear
        [0.050, -0.48, 0.0, 1.2, 0.34, -1.6, 0.10, 0.0, 0.0],  # happy
        [0.090, -0.46, 0.0, 0.0, 0.26, 0.0, 0.00, 0.0, 0.0],  # neutral
        [0.075, -0.46, 0.60, 0.0, 0.26, 1.8, 0.00, 0.0, 0.0],  # sad
        [0.150, -0.64, 0.0, 2.5, 0.17, 0.0, 0.34, 0.0, 0.0],  # surprise
    ],
    dtype=np.float32,
)
_CUE_NAMES = [
    "eye_open",
    "brow_y",
    "brow_slope",
    "brow_arch",
    "mouth_w",
    "mouth_curve",
    "mouth_open",
    "mouth_tilt",
    "wrinkle",
]
_CHUNK = 256  # images per drawing pass: keeps the float32 working set cache-sized


def _sample_params(rng: np.random.Generator, labels: np.ndarray, size: int) -> dict:
    """Draw every per-image random quantity up front.

    Drawing all parameters before any pixels makes the output independent of chunking
    and keeps the RNG call order fixed, which is what guarantees determinism.
    """
    n = labels.shape[0]
    u = lambda lo, hi: rng.uniform(lo, hi, n).astype(np.float32)  # noqa: E731
    jitter = 4.0 * size / 48.0
    p = {name: _CUES[labels, i].copy() for i, name in enumerate(_CUE_NAMES)}
    p["eye_open"] *= u(0.85, 1.15)
    p["brow_slope"] *= u(0.8, 1.2)
    p["mouth_curve"] *= u(0.8, 1.2)
    p["mouth_open"] *= u(0.8, 1.2)
    p["mouth_tilt"] *= np.where(rng.random(n) < 0.5, -1.0, 1.0).astype(np.float32)
    p["cx"] = (size - 1) / 2.0 + u(-jitter, jitter)
    p["cy"] = (size - 1) / 2.0 + u(-jitter, jitter)
    p["radius"] = 0.36 * size * u(0.85, 1.15)
    p["angle"] = np.deg2rad(u(-12.0, 12.0))
    p["bg"] = u(0.2, 0.8)
    p["skin"] = u(0.55, 0.9)
    p["ink"] = p["skin"] * u(0.0, 0.3)
    p["grad_x"] = u(-0.2, 0.2)
    p["grad_y"] = u(-0.2, 0.2)
    p["contrast"] = u(0.8, 1.2)
    p["brightness"] = u(-0.1, 0.1)
    p["noise"] = u(0.01, 0.06)
    return p


def _face_coords(p: dict, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Map the pixel grid into each face's own rotated, scaled frame.

    Drawing every feature in face units means pose and scale jitter cost nothing extra:
    one inverse affine transform moves all features together.
    """
    grid = np.arange(size, dtype=np.float32)
    dx = grid[None, None, :] - p["cx"][:, None, None]
    dy = grid[None, :, None] - p["cy"][:, None, None]
    cos = (np.cos(p["angle"]) / p["radius"])[:, None, None]
    sin = (np.sin(p["angle"]) / p["radius"])[:, None, None]
    return dx * cos + dy * sin, dy * cos - dx * sin


def _curve_dist(
    x: np.ndarray, y: np.ndarray, half_len: float | np.ndarray, slope: np.ndarray, bend: np.ndarray
) -> np.ndarray:
    """Approximate distance to the curve ``y = slope*x + bend*x**2`` for ``|x| <= half_len``.

    The vertical offset is divided by the local gradient norm so steep parts keep their
    thickness, and the ends are capped, which is close enough to a true SDF for 1-2 px
    strokes while staying a handful of array operations.
    """
    dy = (y - slope * x - bend * x * x) / np.sqrt(1.0 + (slope + 2.0 * bend * x) ** 2)
    ex = np.maximum(np.abs(x) - half_len, 0.0)
    return np.sqrt(ex * ex + dy * dy)


def _feature_dist(u: np.ndarray, v: np.ndarray, c: dict) -> np.ndarray:
    """Distance (face units) to the nearest dark feature: eyes, brows, mouth, nose.

    Features are unioned by a minimum of distances so a single anti-aliasing pass later
    renders them all. Eyes and brows use ``|u|`` so one evaluation draws both sides.
    """
    au = np.abs(u) - 0.33
    eye = (np.sqrt((au / 0.15) ** 2 + ((v + 0.12) / c["eye_open"]) ** 2) - 1.0) * c["eye_open"]
    brow = _curve_dist(au, v - c["brow_y"], 0.15, c["brow_slope"], c["brow_arch"]) - 0.06
    mouth_x = u / c["mouth_w"]
    centre = 0.45 + c["mouth_curve"] * u * u + c["mouth_tilt"] * u * np.abs(u)
    half = 0.5 * c["mouth_open"] * np.sqrt(np.maximum(1.0 - mouth_x * mouth_x, 0.0)) + 0.05
    mouth = np.maximum(np.abs(v - centre) - half, (np.abs(mouth_x) - 1.0) * c["mouth_w"])
    nose = _curve_dist(u, v - 0.2, 0.08, 0.0 * u, 0.0 * u) - 0.03
    wrinkle = np.minimum(np.abs(v + 0.02), np.abs(v - 0.07))
    wrinkle = np.maximum(wrinkle - 0.022, np.abs(u) - 0.11) + 10.0 * (1.0 - c["wrinkle"])
    return np.minimum(np.minimum(np.minimum(eye, brow), np.minimum(mouth, nose)), wrinkle)


def _render_chunk(p: dict, size: int, rng: np.random.Generator) -> np.ndarray:
    """Render one chunk of images to uint8, lighting and noise included.

    Anti-aliased coverage ``clip(0.5 - d_px, 0, 1)`` turns distances into smooth edges,
    so sub-pixel pose changes alter pixels gradually instead of snapping.
    """
    col = {k: v[:, None, None] for k, v in p.items()}
    u, v = _face_coords(p, size)
    px = col["radius"]
    face = np.clip(0.5 - (np.sqrt((u / 0.72) ** 2 + (v / 0.95) ** 2) - 1.0) * 0.72 * px, 0, 1)
    ink = np.clip(0.5 - _feature_dist(u, v, col) * px, 0.0, 1.0) * face
    img = col["bg"] + (col["skin"] - col["bg"]) * face
    img += (col["ink"] - img) * ink
    ramp = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    img += col["grad_x"] * ramp[None, None, :] + col["grad_y"] * ramp[None, :, None]
    img = (img - 0.5) * col["contrast"] + 0.5 + col["brightness"]
    img += col["noise"] * rng.standard_normal(img.shape, dtype=np.float32)
    return np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)


def generate_synthetic_faces(
    num_images: int, seed: int, image_size: int = 48
) -> tuple[np.ndarray, np.ndarray]:
    """Generate a balanced, shuffled set of synthetic facial-expression images.

    Labels follow ``FER_CLASSES``; ``label = i % 7`` before a seeded shuffle, so every
    class count is within one of ``num_images / 7`` and small sets still cover all classes.

    Args:
        num_images: Number of images to generate (>= 0).
        seed: Seed for ``np.random.default_rng``; the only source of randomness.
        image_size: Side length in pixels; features scale with it.

    Returns:
        ``(images, labels)``: uint8 array of shape ``(N, image_size, image_size, 1)`` and
        int32 array of shape ``(N,)``.

    Raises:
        ValueError: If ``num_images`` is negative or ``image_size`` is below 8.
    """
    if num_images < 0:
        raise ValueError(f"num_images must be >= 0, got {num_images}")
    if image_size < 8:
        raise ValueError(f"image_size must be >= 8, got {image_size}")
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(num_images) % len(FER_CLASSES)).astype(np.int32)
    params = _sample_params(rng, labels, image_size)
    images = np.empty((num_images, image_size, image_size, 1), dtype=np.uint8)
    for start in range(0, num_images, _CHUNK):
        chunk = {k: v[start : start + _CHUNK] for k, v in params.items()}
        images[start : start + _CHUNK, :, :, 0] = _render_chunk(chunk, image_size, rng)
    return images, labels
