"""The one fix NetsPresso Trainer 1.4.1 needs to train pose estimation on local data at all, applied by
``bench/train_e2e.py`` to the peer's pose runs (``--preload``), and nothing else.

Its ``BaseCustomDataset.__init__`` indexes every sample by ``sample['name']``, but ``PoseEstimationSampleLoader``
(``dataloaders/pose_estimation.py``) builds samples of ``image`` and ``label`` only, so building the training set
stops with ``KeyError: 'name'`` (its detection loader adds the name; the pose loader does not). The fix adds the
image's file name, as the detection loader does; the peer's training is otherwise untouched.
"""

from __future__ import annotations

from pathlib import Path

from netspresso_trainer.dataloaders import pose_estimation

_load_data = pose_estimation.PoseEstimationSampleLoader.load_data


def _named(self, split="train"):
    return [{**sample, "name": Path(sample["image"]).name} for sample in _load_data(self, split)]


pose_estimation.PoseEstimationSampleLoader.load_data = _named
