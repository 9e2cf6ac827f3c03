"""The array and random functions augmentation ops are written with, for two placements.

Every op in `data.augment` is written once, against `ArrayFns`: a NumPy-style namespace
(`np`: `tf.experimental.numpy` or `jax.numpy`), stateless random draws from explicit keys,
and the one image kernel the ops need (an affine resampling).

- `tensorflow_fns()` runs inside `tf.data` on the host (under either Keras backend) and
  inside the TensorFlow backend's compiled train step;
- `jax_fns()` runs inside the JAX backend's jitted train step.

Randomness is stateless: a key is derived from the recipe seed, the op's index and the
batch's step (`fold`), so a batch's augmentation depends on nothing else: not on a
generator's state, not on thread scheduling, and a resumed run draws exactly what the
uninterrupted one would have.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ArrayFns:
    """One placement's functions; `key` values are opaque (a TF seed pair or a JAX key)."""

    name: str
    np: Any
    """`tf.experimental.numpy` or `jax.numpy`."""
    key: Any
    """`key(seed: int) -> key`."""
    fold: Any
    """`fold(key, data: int | scalar tensor) -> key`: a new, independent key."""
    uniform: Any
    """`uniform(key, shape, low=0.0, high=1.0) -> float32`."""
    normal: Any
    """`normal(key, shape) -> float32` standard normal."""
    gamma: Any
    """`gamma(key, shape, alpha) -> float32`."""
    affine: Any
    """`affine(images, transforms)`: NHWC float32, (N, 8) output->input maps, reflect fill."""
    shape: Any
    """`shape(x)`: the shape, dynamic where TensorFlow does not know it when tracing."""
    arange: Any
    """`arange(n)`: float32 0, 1, ..., n - 1 (`n` may be a traced size)."""

    def beta(self, key: Any, shape: Any, alpha: float) -> Any:
        """Beta(alpha, alpha) as the ratio of two gamma draws (as Keras' MixUp draws it)."""
        first = self.gamma(self.fold(key, 0), shape, alpha)
        second = self.gamma(self.fold(key, 1), shape, alpha)
        return first / (first + second)


def gather_affine(np: Any, shape: Any, images: Any, transforms: Any) -> Any:
    """Bilinear affine resampling with reflect fill, from gathers only (XLA compiles it).

    TensorFlow's `ImageProjectiveTransformV3` has no XLA kernel, so the TensorFlow backend's
    compiled step uses this instead. Output pixel (x, y) samples the input at
    (a0 x + a1 y + a2, b0 x + b1 y + b2), as the projective-transform convention says.
    """
    count = shape(images)[0]
    height, width, channels = (int(size) for size in images.shape[1:])  # static in a step
    rows = np.asarray(np.arange(height), "float32")[None, :, None]
    columns = np.asarray(np.arange(width), "float32")[None, None, :]
    t = [transforms[:, i][:, None, None] for i in range(6)]
    x = t[0] * columns + t[1] * rows + t[2]
    y = t[3] * columns + t[4] * rows + t[5]
    x, y = _reflect(np, x, width), _reflect(np, y, height)
    x0, y0 = np.floor(x), np.floor(y)
    wx, wy = (x - x0)[..., None], (y - y0)[..., None]
    x1, y1 = np.minimum(x0 + 1.0, width - 1.0), np.minimum(y0 + 1.0, height - 1.0)
    flat = np.reshape(images, (count, height * width, channels))

    def at(yy: Any, xx: Any) -> Any:
        index = np.asarray(yy, "int32") * width + np.asarray(xx, "int32")
        index = np.reshape(index, (count, height * width, 1))
        picked = np.take_along_axis(flat, index, axis=1)
        return np.reshape(picked, (count, height, width, channels))

    top = at(y0, x0) * (1.0 - wx) + at(y0, x1) * wx
    bottom = at(y1, x0) * (1.0 - wx) + at(y1, x1) * wx
    return top * (1.0 - wy) + bottom * wy


def marsaglia_tsang_gamma(fns: ArrayFns, key: Any, shape: Any, alpha: float) -> Any:
    """Gamma(alpha) from normals and uniforms only (XLA compiles it; TensorFlow's gamma op
    has no XLA kernel).

    Marsaglia & Tsang (2000) for alpha + 1, then the boost Gamma(alpha) = Gamma(alpha + 1) *
    U^(1 / alpha). Eight candidates per draw: each is accepted with probability > 0.95, so
    all eight fail with probability < 1e-10 (then the last candidate is used).
    """
    np, candidates = fns.np, 4
    d = alpha + 1.0 - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    shape = (*tuple(shape), candidates) if isinstance(shape, tuple) else shape
    x = fns.normal(fns.fold(key, 0), shape)
    v = (1.0 + c * x) ** 3
    u = fns.uniform(fns.fold(key, 1), shape, 1e-12, 1.0)
    accepted = (v > 0) & (np.log(u) < 0.5 * x**2 + d - d * v + d * np.log(np.maximum(v, 1e-12)))
    first = np.argmax(
        np.concatenate([accepted[..., :-1], np.ones_like(accepted[..., -1:])], -1), -1
    )
    value = np.take_along_axis(d * v, first[..., None], axis=-1)[..., 0]
    boost = fns.uniform(fns.fold(key, 2), np.shape(value), 1e-12, 1.0) ** (1.0 / alpha)
    return value * boost


def _reflect(np: Any, coordinate: Any, size: int) -> Any:
    """Fold a coordinate into [0, size - 1] by mirroring at the borders (d c b a | a b c d)."""
    period = 2.0 * size
    folded = coordinate - period * np.floor(coordinate / period)
    mirrored = np.where(folded >= size, period - 1.0 - folded, folded)
    return np.clip(mirrored, 0.0, size - 1.0)


@functools.cache
def tensorflow_fns(compiled: bool = False) -> ArrayFns:
    """TensorFlow: `tf.data` on the host, or (`compiled`) the TensorFlow backend's XLA step."""
    import tensorflow as tf
    import tensorflow.experimental.numpy as tnp

    def key(seed: int) -> Any:
        return tf.constant([seed % 2**31, 0], dtype=tf.int64)

    def fold(key_: Any, data: Any) -> Any:
        return tf.random.experimental.stateless_fold_in(key_, tf.cast(data, tf.int64))

    def affine(images: Any, transforms: Any) -> Any:
        if compiled:
            return gather_affine(tnp, tf.shape, images, tf.cast(transforms, tf.float32))
        return tf.raw_ops.ImageProjectiveTransformV3(
            images=images,
            transforms=tf.cast(transforms, tf.float32),
            output_shape=tf.shape(images)[1:3],
            fill_value=0.0,
            interpolation="BILINEAR",
            fill_mode="REFLECT",
        )

    fns: ArrayFns = ArrayFns(
        name="tensorflow",
        np=tnp,
        key=key,
        fold=fold,
        uniform=lambda k, shape, low=0.0, high=1.0: tf.random.stateless_uniform(
            shape, k, low, high
        ),
        normal=lambda k, shape: tf.random.stateless_normal(shape, k),
        gamma=(
            (lambda k, shape, alpha: marsaglia_tsang_gamma(fns, k, shape, alpha))
            if compiled
            else (lambda k, shape, alpha: tf.random.stateless_gamma(shape, k, alpha))
        ),
        affine=affine,
        shape=tf.shape,
        arange=lambda n: tf.range(tf.cast(n, tf.float32), dtype=tf.float32),
    )
    return fns


@functools.cache
def jax_fns() -> ArrayFns:
    """JAX: the JAX backend's jitted train step (XLA on the accelerator)."""
    import jax
    import jax.numpy as jnp
    import keras

    def affine(images: Any, transforms: Any) -> Any:
        return keras.ops.image.affine_transform(
            images, transforms, interpolation="bilinear", fill_mode="reflect"
        )

    return ArrayFns(
        name="jax",
        np=jnp,
        key=lambda seed: jax.random.PRNGKey(seed % 2**31),
        fold=lambda k, data: jax.random.fold_in(k, data),
        uniform=lambda k, shape, low=0.0, high=1.0: jax.random.uniform(
            k, shape, jnp.float32, low, high
        ),
        normal=lambda k, shape: jax.random.normal(k, shape, jnp.float32),
        gamma=lambda k, shape, alpha: jax.random.gamma(k, alpha, shape, jnp.float32),
        affine=affine,
        shape=jnp.shape,
        arange=lambda n: jnp.arange(n, dtype=jnp.float32),
    )


def fns_for(placement: str, backend: str) -> ArrayFns:
    """The functions for `host` (always TensorFlow) or `device` under the Keras `backend`."""
    if placement == "device":
        return jax_fns() if backend == "jax" else tensorflow_fns(compiled=True)
    return tensorflow_fns()
