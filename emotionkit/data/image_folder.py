"""The `image_folder` source: `ROOT/train/<class>/*` (the Kaggle FER2013 layout)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field

from emotionkit.data.decode import IMAGE_EXTENSIONS, decode_files
from emotionkit.data.registry import SOURCES, SourceSpec
from emotionkit.data.types import LoadedData, SplitData, check_train_classes, resolve_class_names
from emotionkit.errors import DataError
from emotionkit.sections import register_section

if TYPE_CHECKING:
    from emotionkit.data.spec import DataSpec


@register_section(SOURCES, "kind")
class ImageFolderSource(SourceSpec):
    """Folders of images: `ROOT/train/<class>/*`, optional `ROOT/val/...` and `ROOT/test/...`."""

    kind: Literal["image_folder"] = "image_folder"
    path: Path = Field(description="ROOT folder holding `train/` (and optionally `val/`, `test/`).")

    def listed_class_names(self, data: DataSpec) -> list[str] | None:
        """`data.classes`, else the class folders of `train/` (no image decoded)."""
        if data.classes is not None:
            return list(data.classes)
        root = Path(self.path)
        if not (root / "train").is_dir():
            raise DataError(
                f"data.source.path: {root} has no train/ folder; expected "
                "ROOT/train/<class>/*.png (the Kaggle FER2013 layout)."
            )
        found = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
        if not found:
            raise DataError(f"data.source.path: {root / 'train'} has no class sub-folders.")
        return resolve_class_names(data.classes, found, str(root / "train"))

    def check(self, data: DataSpec) -> None:
        """The folder, its `train/` and class folders exist (nothing decoded)."""
        super().check(data)
        self.listed_class_names(data)

    def load(self, data: DataSpec, seed: int) -> LoadedData:
        """`ROOT/train/<class>/*` plus optional `ROOT/val/<class>/*` and `ROOT/test/<class>/*`."""
        root = Path(self.path)
        class_names = self.listed_class_names(data) or []
        splits, errors = {}, []
        for name in ("train", "val", "test"):
            if (root / name).is_dir():
                paths, labels = _list_class_folder(root / name, class_names)
                images, kept, split_errors = decode_files(paths, data)
                errors.extend(split_errors)
                ids = [str(paths[i].relative_to(root)) for i in kept]
                splits[name] = SplitData(images, labels[kept], ids)
        check_train_classes(splits["train"], class_names, root / "train")
        return LoadedData(class_names, splits, errors=errors)


def _list_class_folder(folder: Path, class_names: list[str]) -> tuple[list[Path], np.ndarray]:
    unknown = sorted({p.name for p in folder.iterdir() if p.is_dir()} - set(class_names))
    if unknown:
        raise DataError(f"{folder} has class folders not present in train/: {unknown}.")
    paths: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(class_names):
        files = (
            sorted(p for p in (folder / name).glob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
            if (folder / name).is_dir()
            else []
        )
        if not files and folder.name == "train":
            raise DataError(f"Class folder {folder / name} holds no images ({IMAGE_EXTENSIONS}).")
        paths.extend(files)
        labels.extend([label] * len(files))
    return paths, np.asarray(labels, dtype=np.int32)
