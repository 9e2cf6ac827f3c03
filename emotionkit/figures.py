"""Small matplotlib helpers shared by every figure: `data inspect`, `evaluate`, TensorBoard.

Create figures with `new_figure` and write them with `save_figure` (or `figure_png` for
bytes) rather than with pyplot, so no module sets up matplotlib its own way.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

DPI = 110


def new_figure(width: float, height: float) -> Any:
    """A matplotlib `Figure` (inches), constrained layout, without pyplot.

    No pyplot means no global backend or figure state: `savefig` renders with the Agg canvas,
    so this runs headless and leaves a notebook's backend alone.
    """
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def save_figure(figure: Any, path: Path, dpi: int = DPI) -> Path:
    """Write `figure` as a PNG at `path`, creating its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi, format="png")
    return path


def figure_png(figure: Any, dpi: int = DPI) -> bytes:
    """`figure` as PNG bytes, for an image that goes to TensorBoard rather than to a file."""
    buffer = io.BytesIO()
    figure.savefig(buffer, dpi=dpi, format="png")
    return buffer.getvalue()


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
