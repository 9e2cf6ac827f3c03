"""Many runs at once: sweeps over recipe keys and Optuna hyperparameter studies.

- `grid`, `sweep_plan`: Hydra-style `key=a,b` grids and sweep files -> validated points;
- `sweep`, `sweep_report`: run the points (resumable; in this process or `--jobs N` child
  processes), then compare the completed runs (`sweep.json`, `compare.md/.csv/.png`);
- `tune_spec`, `tune`, `trial_pruning`: the tune file, the study in SQLite, and the
  per-epoch callback that reports to Optuna and prunes.

This package sits above the workflow (it calls `workflow.train` and `workflow.resume`), like
the CLI; nothing below imports it.
"""

from __future__ import annotations

from emotionkit.experiments.sweep import SweepResult, run_sweep
from emotionkit.experiments.sweep_plan import SweepPlan, plan_sweep
from emotionkit.experiments.tune import TuneResult, run_tune
from emotionkit.experiments.tune_spec import TuneFile, read_tune_file

__all__ = [
    "SweepPlan",
    "SweepResult",
    "TuneFile",
    "TuneResult",
    "plan_sweep",
    "read_tune_file",
    "run_sweep",
    "run_tune",
]
