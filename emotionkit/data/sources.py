"""Reading `data.source`: the registered source of that kind, then the validation carve.

Sources load the whole split into memory: FER-sized data (48x48 grayscale, ~36k images) is
under 100 MB, and decoding once beats re-decoding PNGs every epoch on a 2-core machine.
"""

from __future__ import annotations

from pathlib import Path

from emotionkit.data.class_map import apply_class_map, check_class_map
from emotionkit.data.spec import DataSpec
from emotionkit.data.splits import apply_split_file, carve_validation, fingerprint
from emotionkit.data.target_kinds import convert_targets
from emotionkit.data.types import LoadedData


def load_data(spec: DataSpec, seed: int, split_file: Path | None = None) -> LoadedData:
    """Read `spec.source`, carve a validation split if needed, fingerprint the result.

    Args:
        spec: the recipe's `data` section.
        seed: the recipe seed (fixes the carved split).
        split_file: a run's `split.json`; when given, train/val take exactly the images it
            lists, so a resumed or re-evaluated run sees the same split as the original.
    """
    data = apply_class_map(load_source(spec, seed), spec.class_map)
    data = convert_targets(data, spec.targets, spec.multi_label_min_share)
    if split_file is not None:  # the saved ids decide; no need to carve (and hash) again
        data.splits = apply_split_file(data.splits, split_file)
    elif "val" not in data.splits:
        carved = carve_validation(data.splits["train"], spec.val_split, seed)
        data.splits = {**data.splits, **carved}
    data.fingerprint = fingerprint(data)
    return data


def check_source(spec: DataSpec) -> None:
    """Cheap checks before a run directory is made: the source's files, the names
    `data.class_map` uses where the class names are known without decoding, and that the
    `data.faces` detector is installed.
    """
    spec.source.check(spec)
    if spec.faces is not None:
        spec.faces.cropper(spec.image_size)
    listed = spec.source.listed_class_names(spec)
    if spec.class_map is not None and listed is not None:
        check_class_map(spec.class_map, listed)


def load_source(spec: DataSpec, seed: int) -> LoadedData:
    """The splits exactly as `data.source` holds them (no validation split carved)."""
    return spec.source.load(spec, seed)


def list_class_names(spec: DataSpec) -> list[str]:
    """The class names of `data.source`, decoding no image where the names are declared.

    Folder sources list their class folders; synthetic data has the FER names; the other
    sources take `data.classes`, or the soft-label class columns, or else are read (npz,
    tfds and fer2013_csv name their classes in the data itself). With `data.class_map`,
    the map's classes (checked against the source's).
    """
    listed = spec.source.listed_class_names(spec)
    source_classes = listed if listed is not None else load_source(spec, seed=0).class_names
    if spec.class_map is None:
        return source_classes
    check_class_map(spec.class_map, source_classes)
    return list(spec.class_map)
