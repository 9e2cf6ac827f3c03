"""A device-augmented quickstart trains, is SIGTERM'd, says so, and resumes exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from emotionkit.recipe import load_recipe
from tests.conftest import BACKEND, REPO, TINY_OVERRIDES


@pytest.mark.slow
def test_a_sigterm_device_run_is_interrupted_and_resumes_to_the_uninterrupted_result(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """SIGTERM marks the run `interrupted` with the resume command. Device keys come from the
    optimizer's step, which the backup restores: the resumed run augments its remaining
    batches exactly as the uninterrupted one did (same process here; tests/test_resume.py
    kills a host-augmented run with SIGKILL)."""
    import os
    import signal

    import keras

    from emotionkit.workflow import resume, train

    overrides = [
        *TINY_OVERRIDES,
        "data.source={kind: synthetic, train_size: 140, val_size: 35, test_size: 0}",
        "data.augment=[flip, {affine: {degrees: 10, translate: 0.1}}, {mixup: {p: 0.5}}]",
        "data.augment_on=device",
        "train.epochs=2",
        "export.formats=[]",
        # TensorFlow: a graph step (XLA:CPU would compile each of the three runs' models for
        # ~10 s; the ops' XLA lowering is tested in test_augment_on_device.py).
        *(["runtime.jit_compile=false"] if BACKEND == "tensorflow" else []),
    ]
    recipe = load_recipe(REPO / "recipes" / "quickstart.yaml", overrides)

    class Terminate(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            if epoch == 0:
                os.kill(os.getpid(), signal.SIGTERM)

    whole = train(recipe, runs_dir=tmp_path / "whole").run_dir
    manifest = json.loads((whole / "manifest.json").read_text())
    assert manifest["status"] == "completed" and manifest["augment_on"]["placement"] == "device"
    with pytest.raises(KeyboardInterrupt):
        train(recipe, runs_dir=tmp_path / "cut", callbacks=[Terminate()])
    (cut,) = (tmp_path / "cut" / recipe.name).iterdir()
    assert json.loads((cut / "manifest.json").read_text())["status"] == "interrupted"
    assert f"resume with `emotionkit train --resume {cut}`" in capsys.readouterr().out
    resumed = resume(cut).run_dir
    assert json.loads((resumed / "manifest.json").read_text())["status"] == "completed"
    expected = (whole / "history.csv").read_text().splitlines()
    got = (resumed / "history.csv").read_text().splitlines()
    assert len(got) == len(expected) == 3  # header + two epochs
    for want, have in zip(expected[1:], got[1:], strict=True):
        np.testing.assert_allclose(
            [float(v) for v in have.split(",")], [float(v) for v in want.split(",")], atol=1e-5
        )
