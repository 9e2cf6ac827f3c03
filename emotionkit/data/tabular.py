"""Tabular sources: fer2013_csv, soft_label_csv, npz (being written; see issue 4)."""

from __future__ import annotations

from emotionkit.data.sources import LoadedData
from emotionkit.recipe import DataSpec


def load_fer2013_csv(spec: DataSpec, seed: int) -> LoadedData:
    raise NotImplementedError


def load_soft_label_csv(spec: DataSpec, seed: int) -> LoadedData:
    raise NotImplementedError


def load_npz(spec: DataSpec, seed: int) -> LoadedData:
    raise NotImplementedError
