"""The recipe's augmentations in plain JAX, for the GPU benchmark only.

emotionkit augments in `tf.data` (`emotionkit/data/augment.py`); the GPU machine we borrow has
JAX but no TensorFlow, and Keras' random layers inside a compiled model turn XLA off. This
module re-implements the ops the FER2013 recipes use with the same distributions (flip,
affine with reflect fill, erasing with noise, MixUp, CutMix; `p` per image) as one jitted
function over a whole epoch of images held on the GPU. It is not part of the package: the
numbers it helps produce are labelled "JAX stand-in augmentation" in docs/benchmarks.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

Batch = tuple[jax.Array, jax.Array]
EpochOp = Callable[[jax.Array, jax.Array, jax.Array], Batch]


def _gate(key: jax.Array, p: float, new: Batch, old: Batch) -> Batch:
    """Per image: the op's output with probability p, else the untouched image and target."""
    apply = jax.random.uniform(key, (old[0].shape[0],)) < p
    return (
        jnp.where(apply[:, None, None, None], new[0], old[0]),
        jnp.where(apply[:, None], new[1], old[1]),
    )


def flip(mode: str = "horizontal", p: float = 0.5) -> EpochOp:
    if mode != "horizontal":
        raise ValueError("the JAX stand-in only flips horizontally")
    return lambda key, x, y: _gate(key, p, (x[:, :, ::-1, :], y), (x, y))


def affine(
    degrees: float = 10.0, translate: float = 0.1, zoom: float = 0.0, p: float = 1.0
) -> EpochOp:
    """Same matrix as emotionkit's `affine`: rotate, zoom and shift about the centre, bilinear,
    reflect fill."""

    def op(key: jax.Array, x: jax.Array, y: jax.Array) -> Batch:
        n, h, w, _ = x.shape
        k_angle, k_x, k_y, k_zoom, k_gate = jax.random.split(key, 5)
        angle = jax.random.uniform(k_angle, (n,), minval=-degrees, maxval=degrees) * math.pi / 180
        shift_x = jax.random.uniform(k_x, (n,), minval=-translate, maxval=translate) * w
        shift_y = jax.random.uniform(k_y, (n,), minval=-translate, maxval=translate) * h
        inverse_scale = 1.0 / jax.random.uniform(k_zoom, (n,), minval=1 - zoom, maxval=1 + zoom)
        cos = (jnp.cos(angle) * inverse_scale)[:, None, None]
        sin = (jnp.sin(angle) * inverse_scale)[:, None, None]
        rows, cols = jnp.meshgrid(
            jnp.arange(h, dtype=x.dtype), jnp.arange(w, dtype=x.dtype), indexing="ij"
        )
        cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
        in_x = cos * (cols - cx) + sin * (rows - cy) + cx - shift_x[:, None, None]
        in_y = -sin * (cols - cx) + cos * (rows - cy) + cy - shift_y[:, None, None]

        def warp_one(image: jax.Array, yy: jax.Array, xx: jax.Array) -> jax.Array:
            return jax.scipy.ndimage.map_coordinates(image, [yy, xx], order=1, mode="mirror")

        warp_channels = jax.vmap(warp_one, in_axes=(2, None, None), out_axes=2)
        warped = jax.vmap(warp_channels)(x, in_y, in_x)
        return _gate(k_gate, p, (jnp.clip(warped, 0, 255), y), (x, y))

    return op


def _boxes(
    key: jax.Array, n: int, h: int, w: int, height_frac: jax.Array, width_frac: jax.Array
) -> jax.Array:
    """(n, h, w, 1) masks of boxes with the given size fractions at uniform random centres."""
    k_row, k_col = jax.random.split(key)
    box_h, box_w = height_frac * h, width_frac * w
    top = jax.random.uniform(k_row, (n,)) * (h - box_h)
    left = jax.random.uniform(k_col, (n,)) * (w - box_w)
    rows = jnp.arange(h)[None, :, None]
    cols = jnp.arange(w)[None, None, :]
    inside = (
        (rows >= top[:, None, None])
        & (rows < (top + box_h)[:, None, None])
        & (cols >= left[:, None, None])
        & (cols < (left + box_w)[:, None, None])
    )
    return inside[..., None]


def erasing(
    scale: tuple[float, float] = (0.02, 0.25), fill_value: float | None = None, p: float = 0.25
) -> EpochOp:
    """Erase sqrt(a) of the width by sqrt(b) of the height, a and b ~ U(scale); noise fill."""

    def op(key: jax.Array, x: jax.Array, y: jax.Array) -> Batch:
        n, h, w, _ = x.shape
        k_a, k_b, k_box, k_fill, k_gate = jax.random.split(key, 5)
        frac_w = jnp.sqrt(jax.random.uniform(k_a, (n,), minval=scale[0], maxval=scale[1]))
        frac_h = jnp.sqrt(jax.random.uniform(k_b, (n,), minval=scale[0], maxval=scale[1]))
        mask = _boxes(k_box, n, h, w, frac_h, frac_w)
        fill = (
            jnp.clip(jax.random.normal(k_fill, x.shape) * 255.0, 0, 255)
            if fill_value is None
            else jnp.full_like(x, fill_value)
        )
        return _gate(k_gate, p, (jnp.where(mask, fill, x), y), (x, y))

    return op


def mixup(alpha: float = 0.2, p: float = 1.0) -> EpochOp:
    def op(key: jax.Array, x: jax.Array, y: jax.Array) -> Batch:
        k_perm, k_lam, k_gate = jax.random.split(key, 3)
        partner = jax.random.permutation(k_perm, x.shape[0])
        lam = jax.random.beta(k_lam, alpha, alpha, (x.shape[0],))
        mixed_x = lam[:, None, None, None] * x + (1 - lam)[:, None, None, None] * x[partner]
        mixed_y = lam[:, None] * y + (1 - lam)[:, None] * y[partner]
        return _gate(k_gate, p, (mixed_x, mixed_y), (x, y))

    return op


def cutmix(alpha: float = 1.0, p: float = 1.0) -> EpochOp:
    def op(key: jax.Array, x: jax.Array, y: jax.Array) -> Batch:
        n, h, w, _ = x.shape
        k_perm, k_lam, k_box, k_gate = jax.random.split(key, 4)
        partner = jax.random.permutation(k_perm, n)
        side = jnp.sqrt(1.0 - jax.random.beta(k_lam, alpha, alpha, (n,)))
        mask = _boxes(k_box, n, h, w, side, side)
        pasted = mask.mean(axis=(1, 2, 3))  # the area actually pasted (boxes snap to pixels)
        mixed_y = (1 - pasted)[:, None] * y + pasted[:, None] * y[partner]
        return _gate(k_gate, p, (jnp.where(mask, x[partner], x), mixed_y), (x, y))

    return op


STAND_INS: dict[str, Callable[..., EpochOp]] = {
    "flip": flip,
    "affine": affine,
    "erasing": erasing,
    "mixup": mixup,
    "cutmix": cutmix,
}


def build_epoch_augment(
    ops: list[dict[str, dict[str, Any]]],
) -> Callable[[jax.Array, jax.Array, jax.Array], Batch]:
    """The recipe's `data.augment` list as one jitted (key, images, targets) -> batch."""
    chain: list[EpochOp] = []
    for entry in ops:
        ((name, params),) = entry.items()
        if name not in STAND_INS:
            raise ValueError(
                f"no JAX stand-in for augmentation {name!r} (have {sorted(STAND_INS)})"
            )
        params = dict(params or {})
        if "scale" in params:
            params["scale"] = tuple(params["scale"])
        chain.append(STAND_INS[name](**params))

    @jax.jit
    def augment(key: jax.Array, images: jax.Array, targets: jax.Array) -> Batch:
        for index, op in enumerate(chain):
            images, targets = op(jax.random.fold_in(key, index), images, targets)
        return images, targets

    return augment
