"""How this run's shipped artifacts were made: re-export it with `export.tta: hflip`.

The run trained (TensorFlow backend) minutes before `write_parity_reference` stored mirror
logits. This adds them from the same `best.keras` under the same backend, as `emotionkit
train` now does itself, then runs the export gate with the run's export section plus
`tta: hflip`. Usage: python reexport_with_tta.py COPY_OF_RUN_DIR (with export/ holding only
parity_reference.npz).
"""

import os
import sys
from pathlib import Path

from emotionkit.runtime import apply_tensorflow_workarounds

apply_tensorflow_workarounds()
os.environ["KERAS_BACKEND"] = "tensorflow"

import keras  # noqa: E402
import numpy as np  # noqa: E402

from emotionkit.export import REFERENCE_FILE, export_run, write_parity_reference  # noqa: E402
from emotionkit.recipe import load_recipe  # noqa: E402

run = Path(sys.argv[1])
best = keras.saving.load_model(run / "checkpoints" / "best.keras", compile=False)
with np.load(run / "export" / REFERENCE_FILE) as reference:
    images, logits = reference["images"], reference["logits"]
# The stored logits are this model's, on this backend: recompute them to be sure.
assert np.abs(np.asarray(best.predict_on_batch(images)) - logits).max() < 1e-5
mirror = np.asarray(best.predict_on_batch(np.ascontiguousarray(images[:, :, ::-1])))
write_parity_reference(run, images, logits, mirror_logits=mirror)
spec = load_recipe(run / "recipe.yaml").export.model_copy(update={"tta": "hflip"})
report = export_run(run, spec)
print(
    {
        name: (check.get("max_abs_diff"), check.get("passed"))
        for name, check in report["checks"].items()
    }
)
