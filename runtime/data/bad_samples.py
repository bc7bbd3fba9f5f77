"""What happens to a bad sample (a corrupt image, a mask of the wrong size, a box outside its image, a label outside
the class list): ``data.on_bad_sample`` (``npc train/evaluate --on-bad-sample``) is ``error`` (the default: the
first one stops the run, naming the file) or ``skip`` (leave it out, name it in a warning, count it by reason).

A loader checks each candidate sample with a function that returns the sample or raises :class:`SampleError`, and
passes both to :meth:`BadSamples.keep`::

    bad = BadSamples.from_config(config)
    items = bad.keep("train", candidates, check_one)   # error: raises; skip: drops and records
    bad.require("train", items, origin="data.path.train")  # nothing left after skipping is an error
    bad.fixed("train", "boxes clipped to their image", 3)  # repairs that keep the sample are counted too
    return DataBundle(..., notes=[*notes, *bad.notes()], bad_samples=bad)

The run folder gets ``bad_samples.json`` (:func:`write_bad_samples`) and the summary table shows the counts.

A file can pass that check and still fail when a batch reads it (damaged inside, or replaced or deleted while the
run goes on): readers raise :class:`UnreadableFileError` then. Under ``skip`` the training loader wraps its split
in :class:`SkipUnreadable` and collates with :class:`DroppingCollate`, so the sample is left out of its batch and
the loop counts it with :meth:`BadSamples.dropped`; under ``error`` the exception stops the run, naming the file.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Sized
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ..errors import INVALID, UNUSABLE, DataError, Problem

__all__ = [
    "POLICIES",
    "BadSamples",
    "Dropped",
    "DroppingCollate",
    "SampleError",
    "SkipUnreadable",
    "UnreadableFileError",
    "write_bad_samples",
]

POLICIES = ("error", "skip")
LISTED = 10  # skipped files named one per line; the rest are counted ("... and N more")

T = TypeVar("T")
R = TypeVar("R")


class SampleError(DataError):
    """One sample is bad; ``reason`` is the short kind it is counted under ("corrupt image", "mask size", ...)."""

    def __init__(self, reason: str, path: str | Path, message: str, problem: Problem = INVALID) -> None:
        super().__init__(message, problem)
        self.reason, self.path = reason, str(path)


class UnreadableFileError(DataError):
    """A file that passed the up-front check but does not read when a batch needs it.

    The message comes first and alone suffices: a DataLoader worker's exception is raised again in the main
    process as ``type(error)(message)``, and any other signature would turn it into a bare RuntimeError.
    """

    def __init__(
        self, message: str, problem: Problem = INVALID, *, path: str | Path = "", reason: str = "corrupt image"
    ) -> None:
        super().__init__(message, problem)
        self.reason, self.path = reason, str(path)


@dataclass(frozen=True)
class Dropped:
    """Stands in a batch for a sample whose file did not read (``skip``); the collate function takes it out."""

    reason: str
    path: str
    message: str


class SkipUnreadable:
    """A map-style dataset whose unreadable samples become :class:`Dropped` instead of stopping the epoch."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        try:
            return self.dataset[index]
        except UnreadableFileError as bad:
            return Dropped(bad.reason, bad.path, bad.message)


class DroppingCollate:
    """``collate(samples) -> (batch or None when every sample was dropped, [Dropped, ...])``.

    A class, not a closure, so DataLoader workers started with ``spawn`` can pickle it.
    """

    def __init__(self, collate: Callable[[list], Any] | None) -> None:
        self.collate = collate

    def __call__(self, samples: list) -> tuple[Any, list[Dropped]]:
        dropped = [s for s in samples if isinstance(s, Dropped)]
        kept = [s for s in samples if not isinstance(s, Dropped)]
        if not kept:
            return None, dropped
        if self.collate is None:
            from torch.utils.data import default_collate

            return default_collate(kept), dropped
        return self.collate(kept), dropped


@dataclass(frozen=True)
class Skipped:
    split: str
    reason: str
    path: str
    message: str


@dataclass
class BadSamples:
    """The policy and what it did: skipped samples (in order) and counted repairs, per split."""

    policy: str = "error"
    skipped: list[Skipped] = field(default_factory=list)
    repairs: dict[str, Counter] = field(default_factory=dict)  # split -> {what was repaired: count}
    kept: dict[str, int] = field(default_factory=dict)  # split -> samples left after checking

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> BadSamples:
        policy = config.get("on_bad_sample") or "error"
        if policy not in POLICIES:
            raise DataError(f"data.on_bad_sample: {policy!r} is not one of: {', '.join(POLICIES)}", UNUSABLE)
        return cls(policy)

    def keep(self, split: str, candidates: Iterable[T], check: Callable[[T], R]) -> list[R]:
        """``check(c)`` for every candidate, in order; the samples that pass (skip) or the first failure (error)."""
        kept = []
        for candidate in candidates:
            try:
                kept.append(check(candidate))
            except SampleError as bad:
                self.add(split, bad)
        return kept

    def add(self, split: str, bad: SampleError) -> None:
        if self.policy == "error":
            raise bad
        self.skipped.append(Skipped(split, bad.reason, bad.path, bad.message))

    def dropped(self, split: str, samples: Iterable[Dropped]) -> list[Dropped]:
        """Records samples dropped from batches (each file once, however many epochs meet it); the new ones."""
        known = {(s.split, s.path) for s in self.skipped}
        new = []
        for sample in samples:
            if (split, sample.path) not in known:
                known.add((split, sample.path))
                self.skipped.append(Skipped(split, sample.reason, sample.path, sample.message))
                new.append(sample)
        return new

    def merge(self, skipped: Iterable[Skipped]) -> None:
        """Adds what another process skipped (under torchrun each meets its own share of the files)."""
        known = {(s.split, s.path) for s in self.skipped}
        for sample in skipped:
            if (sample.split, sample.path) not in known:
                known.add((sample.split, sample.path))
                self.skipped.append(sample)

    def fixed(self, split: str, what: str, count: int = 1) -> None:
        if count:
            self.repairs.setdefault(split, Counter())[what] += count

    def require(self, split: str, items: Sized, origin: str) -> None:
        """Records how many samples the split keeps; none left is an error (after skipping: saying what was bad)."""
        self.kept[split] = len(items)
        if len(items):
            return
        counts = self.counts().get(split)
        if not counts:
            raise DataError(f"{origin}: the {split} split is empty")
        reasons = ", ".join(f"{n} {reason}" for reason, n in counts.items())
        raise DataError(f"{origin}: every sample of the {split} split is bad ({reasons}); none is left to use")

    # --- what it did -------------------------------------------------------------------------------------------

    def counts(self) -> dict[str, dict[str, int]]:
        """split -> {reason: skipped samples}, in the order they were found."""
        out: dict[str, Counter] = {}
        for item in self.skipped:
            out.setdefault(item.split, Counter())[item.reason] += 1
        return {split: dict(counter) for split, counter in out.items()}

    def notes(self) -> list[str]:
        """Warning lines: one per split that lost samples (counts by reason), the first skipped files, repairs."""
        lines = []
        for split, counts in self.counts().items():
            reasons = ", ".join(f"{n} {reason}" for reason, n in counts.items())
            lines.append(f"skipped {sum(counts.values())} bad {split} sample(s) ({reasons}; --on-bad-sample skip)")
        lines += [f"skipped {item.message}" for item in self.skipped[:LISTED]]
        if len(self.skipped) > LISTED:
            lines.append(f"... and {len(self.skipped) - LISTED} more skipped sample(s)")
        for split, repairs in self.repairs.items():
            lines += [f"{split}: {n} {what}" for what, n in repairs.items()]
        return lines

    def summary(self) -> dict[str, Any]:
        """What ``bad_samples.json`` holds (and ``npc evaluate --format json`` shows)."""
        counts = self.counts()
        splits = dict.fromkeys([*self.kept, *counts, *self.repairs])
        return {
            "policy": self.policy,
            "splits": {
                split: {
                    "kept": self.kept.get(split),
                    "skipped": counts.get(split, {}),
                    "repaired": dict(self.repairs.get(split, {})),
                }
                for split in splits
            },
            "skipped": [
                {"split": s.split, "reason": s.reason, "path": s.path, "message": s.message} for s in self.skipped
            ],
        }

    def any(self) -> bool:
        return bool(self.skipped or self.repairs)


def write_bad_samples(path: Path, bad: BadSamples | None) -> None:
    """``RUN/bad_samples.json``, written atomically; nothing for the built-in sets, which hold no files."""
    if bad is None:
        return
    from ..checkpoint import atomic_write_text

    atomic_write_text(path, json.dumps(bad.summary(), indent=2) + "\n")
