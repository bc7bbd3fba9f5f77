"""``environment.cache_data`` (NetsPresso Trainer's): each split keeps every sample it has decoded and resized.

npc's loaders decode and resize on every read; augmentation runs later, on whole batches on the device, so a sample
is the same tensor every epoch and can be kept. As NetsPresso does, the cache is filled up front in the main
process, so DataLoader workers (``num_workers``) start with it instead of each filling a copy they lose every epoch.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from torch.utils.data import Dataset

from .common import DataBundle

__all__ = ["CachedSplit", "cached"]


class CachedSplit(Dataset):
    """A split that reads each index once; failures are not kept, so a bad sample fails (or is skipped) each time."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self.kept: dict[int, Any] = {}

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        if index not in self.kept:
            self.kept[index] = self.dataset[index]
        return self.kept[index]

    def fill(self) -> None:
        for index in range(len(self.dataset)):
            try:
                self[index]
            except Exception:  # noqa: BLE001 - the loader reads it again and reports or skips it as the policy says
                continue


def cached(data: DataBundle) -> DataBundle:
    """``data`` with every split cached; in-memory sets (digits, the generated ones) need nothing."""
    if data.in_memory:
        return data
    splits = {name: CachedSplit(split) for name, split in data.splits.items()}
    for split in splits.values():
        split.fill()
    note = "environment.cache_data: every image was decoded and resized once, up front, and is kept in memory"
    return dataclasses.replace(data, splits=splits, in_memory=True, notes=[*data.notes, note])
