"""The live window of `predict --source`: each annotated frame, when a screen is there.

A window needs a display (on Linux `DISPLAY` or `WAYLAND_DISPLAY`) and an OpenCV built with
a GUI (`opencv-python`, not `opencv-python-headless`). Without either the run goes on
without a window; the results still go to the table and `--out`.
"""

from __future__ import annotations

import os
import sys

import cv2

from emotionkit.predict.inputs import FrameResult
from emotionkit.predict.outputs import draw_predictions

WINDOW_TITLE = "emotionkit predict (q or Esc to stop)"
_STOP_KEYS = frozenset({ord("q"), 27})  # q, Esc


def display_available() -> bool:
    """Whether a window can be shown: a display, and OpenCV's highgui in this build."""
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return False
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GUI:"):
            return line.split(":", 1)[1].strip().upper() != "NONE"
    return True


class LiveWindow:
    """Shows frames in one OpenCV window; `show` says whether to go on (no q / Esc)."""

    def __init__(self) -> None:
        self.open = display_available()

    def show(self, result: FrameResult) -> bool:
        """Draw `result`; False once the user pressed q or Esc (or closed the window)."""
        if not self.open:
            return True
        try:
            cv2.imshow(WINDOW_TITLE, draw_predictions(result))
            key = cv2.waitKey(1) & 0xFF
        except cv2.error:  # no usable GUI after all: carry on without a window
            self.open = False
            return True
        return key not in _STOP_KEYS

    def close(self) -> None:
        if self.open:
            cv2.destroyAllWindows()
