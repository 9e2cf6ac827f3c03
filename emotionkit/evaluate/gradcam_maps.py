"""The steps of Grad-CAM, in the order `gradcam.gradcam_and_logits` runs them.

Cut the model at a feature map (two functional sub-models), differentiate the class logit
with the active backend, weigh the channels by their mean gradient, then resize and scale
the maps with NumPy and PIL.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from emotionkit.errors import ModelError


def split_at_feature_map(model: Any, layer_name: str | None = None) -> tuple[Any, Any]:
    """(image -> feature map, feature map -> logits) sub-models sharing `model`'s layers.

    Two functional sub-models rather than one call with a hook: a cut tensor is an ordinary
    input of `head`, so both backends differentiate it the same way, with no tracing tricks.
    """
    import keras

    # Here, not at the top: `emotionkit.models`' __init__ imports Keras, and importing this
    # module (the evaluation does, for any target) should not.
    from emotionkit.models.layer_names import EMBEDDING

    feature_map = _feature_map_tensor(model, layer_name)
    try:
        head = keras.Model(feature_map, model.output)
    except ValueError as error:  # the logits also read a tensor that bypasses the cut
        raise ModelError(
            f"Grad-CAM: layer {layer_name!r} does not cut the model in two (a connection "
            f"bypasses it: {error}); choose a later layer, e.g. the default (input of "
            f"{EMBEDDING!r})."
        ) from error
    return keras.Model(model.input, feature_map), head


def _feature_map_tensor(model: Any, layer_name: str | None) -> Any:
    """The cut: `layer_name`'s output, by default the embedding layer's input."""
    from emotionkit.models.layer_names import EMBEDDING

    spatial = [layer.name for layer in model.layers if len(getattr(layer.output, "shape", ())) == 4]
    if layer_name is None:
        names = [layer.name for layer in model.layers]
        if EMBEDDING in names:
            return model.get_layer(EMBEDDING).input
        if not spatial:
            raise ModelError("Grad-CAM needs a model with a 4-D (N, H, W, C) feature map.")
        layer_name = spatial[-1]
    if layer_name not in spatial:
        raise ModelError(
            f"Grad-CAM: layer {layer_name!r} is not a layer with a spatial (N, H, W, C) "
            f"output; the last ones are {', '.join(spatial[-4:])}."
        )
    return model.get_layer(layer_name).output


def class_gradients(
    head: Any, activations: np.ndarray, classes: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Logits and d logit[class] / d activations, per image, in inference mode.

    The gradient of the sum over the batch of each image's class logit is each image's own
    gradient: images do not interact when BatchNorm uses its moving statistics.
    """
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        return _tensorflow_gradients(head, activations, classes)
    if backend == "jax":
        return _jax_gradients(head, activations, classes)
    raise ModelError(
        f"Grad-CAM supports the jax and tensorflow backends, not {backend!r}: "
        "set KERAS_BACKEND=jax or tensorflow."
    )


def _tensorflow_gradients(
    head: Any, activations: np.ndarray, classes: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    import tensorflow as tf

    inputs = tf.constant(activations)
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        logits = tf.cast(head(inputs, training=False), tf.float32)
        one_hot = _one_hot(logits.numpy(), classes)
        target = tf.reduce_sum(logits * one_hot)
    return logits.numpy(), np.asarray(tape.gradient(target, inputs), dtype=np.float32)


def _jax_gradients(
    head: Any, activations: np.ndarray, classes: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    import jax
    import jax.numpy as jnp

    trainable = [variable.value for variable in head.trainable_variables]
    non_trainable = [variable.value for variable in head.non_trainable_variables]

    def logits_of(inputs: Any) -> Any:
        outputs, _ = head.stateless_call(trainable, non_trainable, inputs, training=False)
        return outputs.astype(jnp.float32)

    # vjp, not grad: one forward pass yields the logits (to pick the predicted class) and a
    # pullback that takes the one-hot class as its cotangent.
    logits, pullback = jax.vjp(logits_of, jnp.asarray(activations))
    (gradients,) = pullback(jnp.asarray(_one_hot(np.asarray(logits), classes)))
    return np.asarray(logits), np.asarray(gradients, dtype=np.float32)


def _one_hot(logits: np.ndarray, classes: np.ndarray | None) -> np.ndarray:
    chosen = logits.argmax(axis=-1) if classes is None else np.asarray(classes)
    if chosen.min() < 0 or chosen.max() >= logits.shape[-1]:
        raise ValueError(f"class_indices must lie in [0, {logits.shape[-1]}), got {chosen}.")
    return np.eye(logits.shape[-1], dtype=np.float32)[chosen]


def weighted_activation_maps(activations: np.ndarray, gradients: np.ndarray) -> np.ndarray:
    """relu(sum_c w_c A_c) with w_c the spatial mean of the gradient: (N, h, w) float32."""
    weights = gradients.mean(axis=(1, 2))
    return np.maximum(np.einsum("nhwc,nc->nhw", activations, weights), 0.0).astype(np.float32)


def resize_maps(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear (half-pixel centres, as `tf.image.resize`) resize of (N, h, w) maps.

    PIL on float32 (mode "F") images: the same result on every backend, no device round trip.
    """
    from PIL import Image

    height, width = size
    if maps.shape[1:] == (height, width):
        return maps.astype(np.float32)
    bilinear = Image.Resampling.BILINEAR
    resized = [
        Image.fromarray(m.astype(np.float32)).resize((width, height), bilinear) for m in maps
    ]
    return np.stack([np.asarray(m) for m in resized]).astype(np.float32)


def scale_to_unit(maps: np.ndarray) -> np.ndarray:
    """Divide each map by its maximum; a map with no positive value stays zero (no NaN)."""
    peak = maps.max(axis=(1, 2), keepdims=True)
    scaled = np.divide(maps, peak, out=np.zeros_like(maps), where=peak > 0)
    return np.clip(scaled, 0.0, 1.0).astype(np.float32)
