"""`emotionkit sweep`: Hydra-style grids, sweep files, and a sweep killed and run again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emotionkit.errors import RecipeError
from emotionkit.experiments.grid import expand_grid, split_values
from emotionkit.experiments.sweep import PointRun, child_command
from emotionkit.experiments.sweep_plan import plan_sweep
from tests.conftest import BACKEND, REPO, TINY_OVERRIDES
from tests.test_cli import run_cli
from tests.test_docs_errors import console_mismatches
from tests.test_docs_markdown import fenced_blocks

EXPERIMENTS = REPO / "docs" / "experiments.md"

# The tiny quickstart, smaller still: 2 steps per epoch, no export. TensorFlow traces the
# train step without XLA (`jit_compile=false` halves its first epoch on CPU); JAX needs jit.
SWEEP_OVERRIDES = [
    *TINY_OVERRIDES,
    "data.source={kind: synthetic, train_size: 64, val_size: 32, test_size: 0}",
    "export.formats=[]",
    *(["runtime.jit_compile=false"] if BACKEND == "tensorflow" else []),
]


def docs_example(marker: str) -> str:
    """The docs/experiments.md block whose HTML comment above it names `marker`."""
    blocks = fenced_blocks(EXPERIMENTS.read_text(), EXPERIMENTS)
    return next(block.text for block in blocks if marker in block.comment)


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ("0.125,0.25", ["0.125", "0.25"]),
        ("[1,1,1,1],[2,2,2,2]", ["[1,1,1,1]", "[2,2,2,2]"]),
        ("{kind: synthetic, train_size: 140}", ["{kind: synthetic, train_size: 140}"]),
        ("'a,b',c", ["'a,b'", "c"]),
        ("it's,x", ["it's", "x"]),
        ("[{flip: {}}, {mixup: {p: 0.5}}],[]", ["[{flip: {}}, {mixup: {p: 0.5}}]", "[]"]),
    ],
)
def test_only_top_level_commas_split_values(text: str, values: list[str]) -> None:
    assert split_values(text) == values


@pytest.mark.parametrize("text", ["[1,2", "1]", "a,,b", "'a,b"])
def test_unbalanced_values_are_errors(text: str) -> None:
    with pytest.raises(RecipeError, match="Sweep value"):
        split_values(text)


def test_grid_is_every_combination_in_order() -> None:
    grid = expand_grid(["train.epochs=2", "model.width=0.125,0.25", "data.image_size=32,48"])
    assert [point[1:] for point in grid] == [
        ["model.width=0.125", "data.image_size=32"],
        ["model.width=0.125", "data.image_size=48"],
        ["model.width=0.25", "data.image_size=32"],
        ["model.width=0.25", "data.image_size=48"],
    ]
    assert all(point[0] == "train.epochs=2" for point in grid)
    # A key given again takes its last values, as `emotionkit train` does.
    assert expand_grid(["model.width=0.25", "train.epochs=2", "model.width=0.5,1"]) == [
        ["model.width=0.5", "train.epochs=2"],
        ["model.width=1", "train.epochs=2"],
    ]


def test_an_unknown_key_stops_the_sweep_before_any_run(tmp_path: Path) -> None:
    # The page's console block, which the docs checks skip because `sweep` is not among the
    # commands they run: its command and output are checked here.
    command, *expected = docs_example("run by tests/test_sweep.py").splitlines()
    result = run_cli(*command.split()[2:], "--out", str(tmp_path / "s"))
    assert result.returncode == 2, result.stderr
    assert not console_mismatches(tuple(expected), result.stderr), result.stderr
    assert "Sweep run 1/2" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "s").exists()


def test_sweep_file_runs_each_recipe_with_its_overrides(tmp_path: Path) -> None:
    (tmp_path / "mine.yaml").write_text((REPO / "recipes" / "quickstart.yaml").read_text())
    sweep = tmp_path / "widths.yaml"
    sweep.write_text(
        "overrides: [train.epochs=4, model.width=0.5]\n"
        "runs:\n"
        "  - recipe: quickstart\n"
        "    overrides: ['model.width=0.125,0.25', 'model.stage_blocks=[1,1,1,1],[2,2,2,2]']\n"
        "  - recipe: mine.yaml\n"
    )
    plan = plan_sweep(sweep, ["train.epochs=3"])
    assert plan.name == "widths" and len(plan.points) == 5
    assert plan.points[-1].recipe == tmp_path / "mine.yaml"
    recipes = [point.load() for point in plan.points]
    assert {recipe.train.epochs for recipe in recipes} == {3}  # the command line wins
    assert [recipe.model.width for recipe in recipes] == [0.125, 0.125, 0.25, 0.25, 0.5]
    assert recipes[1].model.stage_blocks == [2, 2, 2, 2]
    assert plan.swept == ["model.width", "model.stage_blocks"]
    assert len({point.key for point in plan.points}) == 5


def test_the_documented_sweep_file_plans_its_runs(tmp_path: Path) -> None:
    sweep = tmp_path / "widths-and-flips.yaml"
    sweep.write_text(docs_example("tests/test_sweep.py plans this file"))
    plan = plan_sweep(sweep, ["train.epochs=2"])
    assert plan.name == "widths-and-flips" and len(plan.points) == 3
    recipes = [point.load() for point in plan.points]
    assert [r.model.width for r in recipes] == [0.125, 0.25, 0.125]
    assert [len(r.data.augment) for r in recipes] == [0, 0, 2]
    assert {r.train.epochs for r in recipes} == {2}
    assert plan.swept == ["model.width", "data.augment"]


def test_a_bad_sweep_file_names_the_field(tmp_path: Path) -> None:
    sweep = tmp_path / "bad.yaml"
    sweep.write_text("runs:\n  - recipe: quickstart\n    overides: [train.epochs=2]\n")
    with pytest.raises(RecipeError, match=r"runs\.0\.overides"):
        plan_sweep(sweep, [])


def test_child_processes_train_or_resume_the_point(tmp_path: Path) -> None:
    point = plan_sweep("quickstart", ["model.width=0.25,0.5"]).points[0]
    run = PointRun(point, tmp_path / "p")
    command = child_command(run)
    assert command[-5:-2] == ["train", str(point.recipe), "model.width=0.25"]
    assert command[-2:] == ["--runs-dir", str(run.folder)]
    run.run_dir, run.status = tmp_path / "p" / "quickstart" / "t", "interrupted"
    assert child_command(run)[-3:] == ["train", "--resume", str(run.run_dir)]


@pytest.mark.slow
def test_a_killed_sweep_run_again_finishes_only_what_was_unfinished(tmp_path: Path) -> None:
    import keras

    from emotionkit.experiments import run_sweep

    # Two seeds x two rates: the four runs share their shapes, so under JAX the later ones
    # reuse the first one's compiled steps (the tests' compilation cache).
    grid = ["seed=1,2", "train.optimizer.lr=1e-3,3e-3"]
    plan = plan_sweep("quickstart", [*SWEEP_OVERRIDES, *grid])
    assert len(plan.points) == 4 and plan.swept == ["seed", "train.optimizer.lr"]

    class CtrlCInThirdRun(keras.callbacks.Callback):
        runs = 0

        def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
            CtrlCInThirdRun.runs += 1

        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            if CtrlCInThirdRun.runs == 3:  # after epoch 1's backup of the third run
                raise KeyboardInterrupt

    out = tmp_path / "sweep"
    with pytest.raises(KeyboardInterrupt):
        run_sweep(plan, out, callbacks=[CtrlCInThirdRun()])
    state = json.loads((out / "sweep.json").read_text())
    assert state["status"] == "interrupted"
    assert [run["status"] for run in state["runs"]] == ["completed"] * 2 + [
        "interrupted",
        "pending",
    ]
    finished = {run["run_dir"]: (out / run["run_dir"] / "manifest.json").read_text()
                for run in state["runs"][:2]}  # fmt: skip

    result = run_sweep(plan, out)

    assert [run.action for run in result.runs] == ["skipped", "skipped", "resumed", "trained"]
    assert [run.status for run in result.runs] == ["completed"] * 4
    assert sorted(p.parent for p in out.glob("*/*/*/manifest.json")) == sorted(
        run.run_dir for run in result.runs
    )  # one run directory per point: nothing trained twice
    for run_dir, manifest in finished.items():
        assert (out / run_dir / "manifest.json").read_text() == manifest
    resumed = json.loads((result.runs[2].run_dir / "manifest.json").read_text())
    assert resumed["resumed"] == 1
    assert len((result.runs[2].run_dir / "history.csv").read_text().splitlines()) == 3
    state = json.loads((out / "sweep.json").read_text())
    assert state["status"] == "completed" and state["swept_keys"] == plan.swept
    assert all(isinstance(run["val_macro_f1"], float) for run in state["runs"])
    assert result.comparison is not None
    assert result.comparison.runs[0] == "seed=1 train.optimizer.lr=1e-3"
    assert set(result.comparison.differing_keys) == {"seed", "train.optimizer.lr"}
    table = (out / "compare.md").read_text()
    header = next(line for line in table.splitlines() if line.startswith("| metric |"))
    assert header.count("seed=") == 4 and "| `train.optimizer.lr` |" in table
    assert (out / "compare.png").read_bytes()[:4] == b"\x89PNG"
