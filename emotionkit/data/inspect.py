"""Data inspection: what a source really holds, before anything is trained on it.

`inspect_data(spec, seed, out_dir)` reads `data.source` exactly as it is stored (no validation
split carved, so the counts match the dataset's own documentation) and writes:

- `data_report.json`: per split the class counts and percentages, imbalance ratio, pixel
  mean/std, image shape, on-disk sizes/modes/formats (image folders) and per-image contrast
  statistics; exact duplicates (content hash of the decoded pixels) within splits, across
  splits and with conflicting labels; blank images; decode failures and dropped rows.
- `samples.png`: a grid of seeded random train images, one row per class.
- `augment_preview.png`: one train image and copies through the recipe's `data.augment`.

Per-image contrast is reported because copies of FER2013 circulate contrast-stretched or
contrast-compressed, and a model trained on one kind scores badly on another: the per-image
std and p1-p99 range tell them apart at a glance (the original: std p50 ~ 50 grey levels).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from emotionkit.data.augment import build_augment_fn
from emotionkit.data.image_folder import ImageFolderSource
from emotionkit.data.registry import AugmentOp
from emotionkit.data.sources import load_source
from emotionkit.data.spec import DataSpec
from emotionkit.data.splits import content_hashes
from emotionkit.data.types import LoadedData, SplitData
from emotionkit.figures import hide_frame, new_figure, save_figure, show_image
from emotionkit.runs import write_json

MAX_EXAMPLES = 20
"""Ids (or groups of ids) listed per finding: enough to look at; the counts are exact."""
SAMPLES_PER_CLASS = 8
AUGMENTED_COPIES = 11  # + the original: a 3x4 grid
PERCENTILES = (5, 50, 95)
_CHUNK = 4096  # images per float64 block: ~75 MB at 48x48x1, bounded for any dataset size


def inspect_data(spec: DataSpec, seed: int, out_dir: Path) -> dict[str, Any]:
    """Report on `spec.source` and write the report and two figures to `out_dir`.

    The Keras backend must be configured first (the augmentation preview builds layers).

    Args:
        spec: the recipe's data section (source, image size, channels, augment, on_error).
        seed: picks the sample images and seeds the augmentations.
        out_dir: created if needed; `data_report.json`, `samples.png` and
            `augment_preview.png` in it are overwritten, nothing else is touched.

    Returns:
        The report written to `data_report.json`.

    Example:
        >>> report = inspect_data(recipe.data, recipe.seed, Path("runs/inspect/fer"))
        >>> report["splits"]["train"]["class_counts"]["disgust"]
        436
    """
    data = load_source(spec, seed)
    hashes = {name: content_hashes(split.images) for name, split in data.splits.items()}
    stats = {name: per_image_stats(split.images) for name, split in data.splits.items()}
    root = Path(spec.source.path) if isinstance(spec.source, ImageFolderSource) else None
    report: dict[str, Any] = {
        "source": spec.source.model_dump(mode="json"),
        "image_size": spec.image_size,
        "channels": spec.channels,
        "classes": data.class_names,
        "splits": {
            name: split_report(split, data.class_names, stats[name], root)
            for name, split in data.splits.items()
        },
        "duplicates": duplicate_report(data, hashes),
        "blank_images": blank_report(data, stats),
        "same_file_name": same_file_name_report(data) if root is not None else None,
        "decode_failures": {"count": len(data.errors), "files": data.errors},
        "dropped_rows": data.dropped,
        "files": {"samples": "samples.png", "augment_preview": "augment_preview.png"},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    train = data.splits["train"]
    save_sample_grid(train, data.class_names, seed, out_dir / "samples.png")
    nonblank = np.flatnonzero(stats["train"]["std"] > 0)
    pick = int(np.random.default_rng(seed).choice(nonblank if len(nonblank) else len(train)))
    copies = augmented_copies(train.images[pick], spec.augment, seed, data.num_classes)
    save_augment_preview(train.images[pick], copies, spec.augment, out_dir / "augment_preview.png")
    write_json(out_dir / "data_report.json", report)
    return report


def per_image_stats(images: np.ndarray) -> dict[str, np.ndarray]:
    """Per image: mean, std, 1st/99th percentile and min/max of all pixels (0-255 scale)."""
    parts: dict[str, list[np.ndarray]] = defaultdict(list)
    for start in range(0, len(images), _CHUNK):
        flat = images[start : start + _CHUNK].reshape(min(_CHUNK, len(images) - start), -1)
        pixels = flat.astype(np.float64)
        parts["mean"].append(pixels.mean(axis=1))
        parts["std"].append(pixels.std(axis=1))
        low, high = np.percentile(pixels, [1, 99], axis=1)
        parts["p1"].append(low)
        parts["p99"].append(high)
    keys = ("mean", "std", "p1", "p99")
    return {key: np.concatenate(parts[key]) if parts[key] else np.zeros(0) for key in keys}


def split_report(
    split: SplitData, class_names: list[str], stats: dict[str, np.ndarray], root: Path | None
) -> dict[str, Any]:
    """Size, class counts and percentages, imbalance, pixel and contrast statistics."""
    counts = split.class_counts(len(class_names))
    size = len(split)
    # Equal-sized images: the pooled variance is the mean within-image variance plus the
    # variance of the image means.
    mean = float(stats["mean"].mean()) if size else 0.0
    std = float(np.sqrt((stats["std"] ** 2).mean() + stats["mean"].var())) if size else 0.0
    return {
        "size": size,
        "class_counts": dict(zip(class_names, counts, strict=True)),
        "class_percent": {
            name: round(100 * count / size, 2) if size else 0.0
            for name, count in zip(class_names, counts, strict=True)
        },
        "imbalance_ratio": round(max(counts) / min(counts), 2) if min(counts) > 0 else None,
        "image_shape": list(split.images.shape[1:]),
        "pixel_mean": round(mean, 3),
        "pixel_std": round(std, 3),
        "pixel_mean_01": round(mean / 255, 4),
        "pixel_std_01": round(std / 255, 4),
        "contrast": {
            "std": _distribution(stats["std"]),
            "p1_p99_range": _distribution(stats["p99"] - stats["p1"]),
        },
        "on_disk": on_disk_formats(root, split.ids) if root is not None else None,
    }


def _distribution(values: np.ndarray) -> dict[str, float]:
    if not len(values):
        return {}
    summary = {"mean": round(float(values.mean()), 2)}
    for q, value in zip(PERCENTILES, np.percentile(values, PERCENTILES), strict=True):
        summary[f"p{q}"] = round(float(value), 2)
    return summary


def on_disk_formats(root: Path, ids: list[str]) -> dict[str, int]:
    """`"WxH MODE FORMAT"` -> number of files, from the file headers (Pillow, when installed).

    Pillow is optional (not a dependency): without it every file counts as unknown.
    """
    try:
        from PIL import Image
    except ImportError:
        return {"unknown (install Pillow to read file headers)": len(ids)}
    found: Counter[str] = Counter()
    for image_id in ids:
        try:
            with Image.open(root / image_id) as image:  # lazy: reads the header only
                found[f"{image.width}x{image.height} {image.mode} {image.format}"] += 1
        except OSError:  # decoded by TensorFlow, which reads a few formats Pillow does not
            found["unreadable by Pillow"] += 1
    return dict(found.most_common())


def duplicate_report(data: LoadedData, hashes: dict[str, list[str]]) -> dict[str, Any]:
    """Exact duplicates within each split, val/test images also in train, conflicting labels."""
    train_ids: dict[str, list[str]] = defaultdict(list)
    for image_id, digest in zip(data.splits["train"].ids, hashes["train"], strict=True):
        train_ids[digest].append(image_id)
    across = {}
    for name, split in data.splits.items():
        if name == "train":
            continue
        leaks = [
            {"id": image_id, "train_ids": train_ids[digest]}
            for image_id, digest in zip(split.ids, hashes[name], strict=True)
            if digest in train_ids
        ]
        across[name] = {"images": len(leaks), "examples": leaks[:MAX_EXAMPLES]}
    return {
        "within_split": {
            name: _within_split(split.ids, hashes[name]) for name, split in data.splits.items()
        },
        "also_in_train": across,
        "conflicting_labels": _conflicting_labels(data, hashes),
    }


def _within_split(ids: list[str], hashes: list[str]) -> dict[str, Any]:
    groups: dict[str, list[str]] = defaultdict(list)
    for image_id, digest in zip(ids, hashes, strict=True):
        groups[digest].append(image_id)
    repeated = sorted((g for g in groups.values() if len(g) > 1), key=lambda g: (-len(g), g[0]))
    return {
        "groups": len(repeated),
        "extra_copies": sum(len(group) - 1 for group in repeated),
        "examples": repeated[:MAX_EXAMPLES],
    }


def _conflicting_labels(data: LoadedData, hashes: dict[str, list[str]]) -> dict[str, Any]:
    """Groups of identical images (over all splits) whose members have different classes."""
    members: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for name, split in data.splits.items():
        for image_id, digest, label in zip(split.ids, hashes[name], split.hard_labels, strict=True):
            members[digest].append((image_id, int(label)))
    conflicts = sorted(
        (group for group in members.values() if len({label for _, label in group}) > 1),
        key=lambda group: (-len(group), group[0][0]),
    )
    return {
        "groups": len(conflicts),
        "images": sum(len(group) for group in conflicts),
        "examples": [
            {
                "ids": [image_id for image_id, _ in group],
                "labels": [data.class_names[label] for _, label in group],
            }
            for group in conflicts[:MAX_EXAMPLES]
        ],
    }


def blank_report(data: LoadedData, stats: dict[str, dict[str, np.ndarray]]) -> dict[str, Any]:
    """Images whose pixels are all equal (std 0): nothing to learn, often scraping failures."""
    by_split = {name: np.flatnonzero(stats[name]["std"] == 0) for name in data.splits}
    ids = [data.splits[name].ids[i] for name, found in by_split.items() for i in found]
    return {
        "count": len(ids),
        "by_split": {name: len(found) for name, found in by_split.items()},
        "ids": ids[:MAX_EXAMPLES],
    }


def same_file_name_report(data: LoadedData) -> dict[str, Any]:
    """File names found in more than one class folder of a split (FER2013 has two).

    Harmless here (images are keyed on their path), but a tool keyed on the file name or
    numeric id would merge two different images.
    """
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for name, split in data.splits.items():
        for image_id in split.ids:
            groups[name, Path(image_id).name].append(image_id)
    repeated = sorted(ids for ids in groups.values() if len(ids) > 1)
    return {"names": len(repeated), "examples": repeated[:MAX_EXAMPLES]}


def augmented_copies(
    image: np.ndarray, ops: list[AugmentOp], seed: int, num_classes: int
) -> np.ndarray:
    """`AUGMENTED_COPIES` versions of one (H, W, C) uint8 image through `data.augment`.

    The batch goes through `tf.data.map`, as in training, so the preview shows what the
    model sees under either backend. Returns an empty array when `ops` is empty.
    """
    if not ops:
        return np.zeros((0, *image.shape), dtype=np.uint8)
    import tensorflow as tf

    augment = build_augment_fn(ops, seed)
    batch = np.repeat(image[None].astype(np.float32), AUGMENTED_COPIES, axis=0)
    # Any valid distribution will do: the preview shows images (mixing ops mix copies of
    # one image here, so they show no change).
    targets = np.full((AUGMENTED_COPIES, num_classes), 1 / num_classes, dtype=np.float32)
    dataset = tf.data.Dataset.from_tensors((batch, targets)).map(augment)
    augmented, _ = next(iter(dataset.as_numpy_iterator()))
    return np.clip(np.round(augmented), 0, 255).astype(np.uint8)


def save_sample_grid(
    train: SplitData,
    class_names: list[str],
    seed: int,
    path: Path,
    per_class: int = SAMPLES_PER_CLASS,
) -> None:
    """One row per class of `per_class` seeded random train images, the class name on the left."""
    rng = np.random.default_rng(seed)
    labels = train.hard_labels
    figure = new_figure(1.2 * per_class, 1.3 * len(class_names))
    axes = figure.subplots(len(class_names), per_class, squeeze=False)
    for label, name in enumerate(class_names):
        members = np.flatnonzero(labels == label)
        picks = np.sort(rng.choice(members, min(per_class, len(members)), replace=False))
        for column, ax in enumerate(axes[label]):
            hide_frame(ax)
            if column < len(picks):
                show_image(ax, train.images[picks[column]])
        axes[label][0].set_ylabel(f"{name}\n({len(members)})", rotation=0, ha="right", va="center")
    figure.suptitle(f"train: {per_class} random images per class (seed {seed})")
    save_figure(figure, path, dpi=80)


def save_augment_preview(
    original: np.ndarray, copies: np.ndarray, ops: list[AugmentOp], path: Path
) -> None:
    """The original image and its augmented copies; says so when `data.augment` is empty."""
    images = [original, *copies]
    columns = min(4, len(images))
    rows = -(-len(images) // columns)
    figure = new_figure(max(2 * columns, 3), 2 * rows + 0.6)
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for index, ax in enumerate(axes):
        hide_frame(ax)
        if index < len(images):
            show_image(ax, images[index])
            ax.set_title("original" if index == 0 else f"augmented {index}", fontsize=9)
    names = ", ".join(_op_title(op) for op in ops)
    title = f"data.augment: {names}" if ops else "data.augment is empty:\nno train augmentations"
    figure.suptitle(title, fontsize=10)
    save_figure(figure, path, dpi=80)


def _op_title(op: AugmentOp) -> str:
    """`rotate(degrees=15)`: the op's name and the parameters the recipe set."""
    params = op.model_dump(mode="json", exclude_unset=True)
    return op.entry_name + (
        f"({', '.join(f'{k}={v}' for k, v in params.items())})" if params else ""
    )


def report_table(report: dict[str, Any]) -> Any:
    """Per-class counts and per-split statistics as a Rich table, as `data inspect` prints."""
    from rich.table import Table

    splits = report["splits"]
    table = Table(title=f"{report['source']['kind']} source, as stored (no val carved)")
    table.add_column("class")
    for name in splits:
        table.add_column(name, justify="right")
    for name in report["classes"]:
        cells = [
            f"{s['class_counts'][name]:,} ({s['class_percent'][name]:.1f} %)"
            for s in splits.values()
        ]
        table.add_row(name, *cells)
    table.add_section()
    columns = [_split_cells(name, report) for name in splits]
    for label in columns[0]:
        table.add_row(label, *[column[label] for column in columns])
    return table


def _split_cells(name: str, report: dict[str, Any]) -> dict[str, str]:
    split = report["splits"][name]
    within = report["duplicates"]["within_split"][name]
    leaks = report["duplicates"]["also_in_train"].get(name)
    return {
        "total": f"{split['size']:,}",
        "imbalance max/min": _ratio(split["imbalance_ratio"]),
        "image shape": "x".join(str(size) for size in split["image_shape"]),
        "pixel mean / std (0-1)": f"{split['pixel_mean_01']:.3f} / {split['pixel_std_01']:.3f}",
        "per-image std p5/p50/p95": _percentiles(split["contrast"]["std"]),
        "p1-p99 range p5/p50/p95": _percentiles(split["contrast"]["p1_p99_range"]),
        "blank images": f"{report['blank_images']['by_split'][name]:,}",
        "duplicate copies (groups)": f"{within['extra_copies']:,} ({within['groups']:,})",
        "also in train": "-" if leaks is None else f"{leaks['images']:,}",
    }


def report_lines(report: dict[str, Any]) -> list[str]:
    """The findings of `inspect_data` that are not per split, one per line."""
    conflicts = report["duplicates"]["conflicting_labels"]
    failures = report["decode_failures"]
    lines = [
        f"identical images with different labels: {conflicts['groups']:,} group(s) of "
        f"{conflicts['images']:,} images",
        f"blank images (all pixels equal): {report['blank_images']['count']:,}",
        f"decode failures (skipped): {failures['count']:,}"
        + "".join(f"\n  {f['path']}: {f['reason']}" for f in failures["files"][:5]),
    ]
    if report["dropped_rows"]:
        lines.append(f"dropped rows: {report['dropped_rows']}")
    same_name = report["same_file_name"]
    if same_name and same_name["names"]:
        examples = "; ".join(" & ".join(ids) for ids in same_name["examples"][:3])
        lines.append(f"same file name in several class folders: {same_name['names']} ({examples})")
    for name, split in report["splits"].items():
        if split["on_disk"]:
            found = ", ".join(f"{kind}: {n:,}" for kind, n in split["on_disk"].items())
            lines.append(f"{name} files on disk: {found}")
    return lines


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _percentiles(summary: dict[str, float]) -> str:
    return "/".join(f"{summary[f'p{q}']:.0f}" for q in PERCENTILES) if summary else "-"
