"""Training batches that know which (epoch, step) they are, so that augmentation can run where the batch is made.

Augmentation draws each batch's parameters from a seed derived from (seed, rank, epoch, step) (``.augment``). The
step used to be known only to the training loop, so augmentation ran in the main process, after the DataLoader had
handed the batch over, and the model waited for it. On a CPU that cost a classification run a fifth of its epoch
(docs/benchmarks.md, "End-to-end training vs NetsPresso Trainer"). Here the batch sampler tags each list of
indices with its epoch and step (:class:`StepBatch`); :class:`Stepped` hands the tag on with the samples, and
:class:`AugmentingCollate` collates and augments in whichever process fetches the batch: a DataLoader worker, which
overlaps the augmentation with the model's step, or the main process without workers. The seed is the same either
way, so the batch is the same, and a resumed run sees the augmentations an uninterrupted one saw.

On a GPU the loop keeps augmenting on the device (``AugmentingCollate`` is not used): kornia runs there far faster
than in one CPU worker thread.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

from torch.utils.data import BatchSampler, Sampler

from .bad_samples import Dropped, DroppingCollate

__all__ = ["AugmentingCollate", "ResumingSampler", "StepBatch", "StepBatches", "Stepped"]


class ResumingSampler(Sampler):
    """The wrapped sampler's order less its first ``skip`` indices: a resumed epoch goes on where the saved one
    stopped, in the same (seed, epoch) permutation (the wrapped sampler draws it anew on every ``iter``)."""

    def __init__(self, order: Sampler) -> None:
        self.order, self.skip = order, 0

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(iter(self.order), self.skip, None)

    def __len__(self) -> int:
        return max(0, len(self.order) - self.skip)


class StepBatch(list):
    """A batch's sample indices, with the epoch and step it is trained at (they travel to a worker with it)."""

    def __init__(self, indices: list[int], epoch: int, step: int) -> None:
        super().__init__(indices)
        self.epoch, self.step = epoch, step


class StepBatches(Sampler):
    """``BatchSampler`` over a :class:`ResumingSampler` whose batches are :class:`StepBatch` es.

    Set ``epoch`` before each ``iter``; the first batch's step is where the resuming sampler starts
    (``skip // batch_size``: a resumed epoch only ever skips whole batches).
    """

    def __init__(self, order: ResumingSampler, batch_size: int, drop_last: bool) -> None:
        self.order, self.batch_size, self.drop_last = order, batch_size, drop_last
        self.epoch = 0

    def __iter__(self) -> Iterator[StepBatch]:
        first = self.order.skip // self.batch_size
        batches = BatchSampler(self.order, self.batch_size, self.drop_last)
        for step, indices in enumerate(batches, start=first):
            yield StepBatch(indices, self.epoch, step)

    def __len__(self) -> int:
        return len(BatchSampler(self.order, self.batch_size, self.drop_last))


class _StepSamples(list):
    """A batch's samples, still carrying their :class:`StepBatch` 's epoch and step for the collate function."""

    epoch: int
    step: int


class Stepped:
    """A map-style dataset that fetches a :class:`StepBatch` at once (DataLoader calls ``__getitems__`` when a
    dataset has it) and keeps its tag on the samples."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        return self.dataset[index]

    def __getitems__(self, batch: StepBatch) -> _StepSamples:
        samples = _StepSamples(self.dataset[index] for index in batch)
        samples.epoch, samples.step = batch.epoch, batch.step
        return samples


class AugmentingCollate:
    """``DroppingCollate`` then the augmentation of the batch's (epoch, step): ``(batch or None, [Dropped, ...])``.

    A class, not a closure, so DataLoader workers started with ``spawn`` can pickle it.
    """

    def __init__(self, collate: Callable[[list], Any] | None, augment: Callable[..., tuple[Any, Any]]) -> None:
        self.collate, self.augment = DroppingCollate(collate), augment

    def __call__(self, samples: _StepSamples) -> tuple[Any, list[Dropped]]:
        batch, dropped = self.collate(samples)
        if batch is not None:
            images, target = batch
            batch = self.augment(images, target, epoch=samples.epoch, step=samples.step)
        return batch, dropped
