"""Small matplotlib helpers shared by the figures of `data inspect` and `evaluate`."""

from __future__ import annotations

from typing import Any

import numpy as np


def show_image(ax: Any, image: np.ndarray) -> None:
    """A 0-255 image on `ax`: grayscale (H, W) or (H, W, 1) with a fixed gray scale, else RGB."""
    if image.ndim == 2 or image.shape[-1] == 1:
        ax.imshow(image.reshape(image.shape[:2]), cmap="gray", vmin=0, vmax=255)
    else:
        ax.imshow(image)


def hide_frame(ax: Any) -> None:
    """No ticks or frame, but keep titles and the y label (axis('off') would hide the label)."""
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_frame_on(False)
