"""The two fixes NetsPresso Trainer 1.4.1 needs to train pose estimation on local data at all, applied by
``bench/train_e2e.py`` to the peer's pose runs (``--preload``), and nothing else.

1. Its ``BaseCustomDataset.__init__`` indexes every sample by ``sample['name']``, but
   ``PoseEstimationSampleLoader`` (``dataloaders/pose_estimation.py``) builds samples of ``image`` and ``label``
   only, so building the training set stops with ``KeyError: 'name'`` (its detection loader adds the name; the
   pose loader does not). The fix adds the image's file name, as the detection loader does.
2. Its ``PoseEstimationProcessor`` steps (``pipelines/task_processors/pose_estimation.py``) ``torch.stack`` the
   batch's ``pixel_values``, ``keypoints`` and ``indices``, which its ``default_collate_fn`` has stacked already,
   so the first step stops with "stack(): argument 'tensors' ... must be tuple of Tensors, not Tensor". The fix
   hands the steps each stacked tensor as the tuple of its rows, which they stack back into the same tensor.

The peer's training is otherwise untouched. With both, its first training epoch runs; it then stops in
``get_metric_with_all_outputs`` (``TypeError: string indices must be integers``: its training metric reads
``output['pred']`` from outputs that are not dicts), a third failure not patched here, so a pose comparison can
only time that first epoch's training loop (the report's ``train:start`` / ``train:end`` events).
"""

from __future__ import annotations

from pathlib import Path

from netspresso_trainer.dataloaders import pose_estimation
from netspresso_trainer.pipelines.task_processors import pose_estimation as processors

_load_data = pose_estimation.PoseEstimationSampleLoader.load_data


def _named(self, split="train"):
    return [{**sample, "name": Path(sample["image"]).name} for sample in _load_data(self, split)]


pose_estimation.PoseEstimationSampleLoader.load_data = _named


def _rows(batch: dict) -> dict:
    stacked = ("pixel_values", "keypoints", "indices")
    return {key: tuple(value) if key in stacked else value for key, value in batch.items()}


def _unstacked(step):
    def wrapped(self, model, batch, *args, **kwargs):
        return step(self, model, _rows(batch), *args, **kwargs)

    return wrapped


for _name in ("train_step", "valid_step", "test_step"):
    _step = getattr(processors.PoseEstimationProcessor, _name)
    setattr(processors.PoseEstimationProcessor, _name, _unstacked(_step))
