"""Drawing Grad-CAM: a heatmap over its face, and panels of image | overlay pairs.

No model here: `gradcam.plot_gradcam_grid` and `gradcam.explain_files` compute the heatmaps
and lay them out with these helpers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from emotionkit.evaluate.gradcam_maps import resize_maps
from emotionkit.figures import new_figure

COLORMAP = "jet"
GRADCAM_DPI = 100
"""Resolution of the Grad-CAM PNGs (the evaluation grid and `emotionkit explain`)."""


def overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.4) -> np.ndarray:
    """Blend a [0, 1] heatmap, coloured with `COLORMAP`, over a 0-255 image.

    Args:
        image: (H, W), (H, W, 1) or (H, W, 3) pixels, 0-255.
        heatmap: (h, w) in [0, 1]; resized to (H, W) when it differs.
        alpha: weight of the heatmap colour (0 = image only, 1 = heatmap only).

    Returns:
        (H, W, 3) uint8 RGB.
    """
    from matplotlib import colormaps

    rgb = _as_rgb(image)
    heatmap = resize_maps(np.asarray(heatmap, np.float32)[None], rgb.shape[:2])[0]
    colour = colormaps[COLORMAP](np.clip(heatmap, 0.0, 1.0))[..., :3] * 255.0
    blended = (1.0 - alpha) * rgb + alpha * colour
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)


def _as_rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"image must be (H, W), (H, W, 1) or (H, W, 3), got {image.shape}.")
    return image


def panel_grid(rows: int, columns: int, cell: float) -> tuple[Any, Any]:
    """A figure of `cell`-inch panels (plus room for a title), axes off, as a 2-D array."""
    figure = new_figure(columns * cell, rows * (cell + 0.3))
    axes = figure.subplots(rows, columns, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    return figure, axes


def draw_image_and_overlay(
    axes: Sequence[Any],
    image: np.ndarray,
    heatmap: np.ndarray,
    titles: tuple[str, str],
    fontsize: int,
) -> None:
    """The image (gray or RGB, 0-255) and its overlay in two panels."""
    pixels = np.clip(np.asarray(image, np.float32), 0, 255).astype(np.uint8)
    if pixels.ndim == 3 and pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    axes[0].imshow(pixels, cmap="gray", vmin=0, vmax=255)
    axes[1].imshow(overlay(pixels, heatmap))
    for ax, title in zip(axes, titles, strict=True):
        ax.set_title(title, fontsize=fontsize)
