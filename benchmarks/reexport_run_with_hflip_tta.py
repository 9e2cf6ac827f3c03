"""Add mirror logits to a run's parity reference, then re-export it with `export.tta: hflip`.

    python benchmarks/reexport_run_with_hflip_tta.py COPY_OF_RUN_DIR

How the shipped artifacts of `benchmarks/results/fer2013_cpu_2026-11-26T08-46-39/` (the
bundled `fer2013-cpu` model) were made. That run trained (TensorFlow backend) minutes before
`write_parity_reference` stored mirror logits. This script adds them from the same
`best.keras` under the same backend, as `emotionkit train` now does itself, then runs the
export gate with the run's export section plus `tta: hflip`. COPY_OF_RUN_DIR is a copy of
the run directory whose export/ holds only parity_reference.npz. Prints each artifact's
(max_abs_diff, passed).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def main(run: Path) -> None:
    from emotionkit.runtime import apply_tensorflow_workarounds

    apply_tensorflow_workarounds()
    # The stored logits are the TensorFlow backend's: compare like with like.
    os.environ["KERAS_BACKEND"] = "tensorflow"

    import keras
    import numpy as np

    from emotionkit.export import REFERENCE_FILE, export_run, write_parity_reference
    from emotionkit.recipe import load_recipe

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


if __name__ == "__main__":
    main(Path(sys.argv[1]))
