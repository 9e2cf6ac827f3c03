"""Ship a trained run's ONNX as the package's bundled model (maintainers).

    emotionkit train recipes/fer2013_cpu.yaml data.source.path=../shared/data/fer2013
    python docs/tools/bundle_model.py RUN_DIR

Copies RUN_DIR/export/model.onnx (it must have passed the parity gate) to
emotionkit/assets/fer2013_cpu.onnx with the recipe, command, commit, data fingerprint and
validation metrics in its metadata; then update the figures in docs/models.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

from emotionkit.bundled import bundle_run

COMMAND = "emotionkit train recipes/fer2013_cpu.yaml data.source.path=../shared/data/fer2013"

if __name__ == "__main__":
    print(bundle_run(Path(sys.argv[1]), command=COMMAND))
