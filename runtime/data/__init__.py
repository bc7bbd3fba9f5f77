"""Data for every task, as :class:`DataBundle` s of torch datasets.

* :mod:`.build` — ``build_data``: the task and ``data.format`` pick the loader.
* :mod:`.classification`, :mod:`.segmentation`, :mod:`.detection`, :mod:`.pose` — one module per task: its
  built-in set, NetsPresso's local layout (and COCO JSON for detection), its collate and targets.
* :mod:`.huggingface` — ``data.format: huggingface``: a Hugging Face dataset (classification, segmentation).
* :mod:`.common` — what the task loaders share: :class:`Preprocess` (stored in the weights' metadata so that
  ``npc predict`` prepares an image as training did), image checks, split folders, the holdout split.
* :mod:`.shapes` — the generated ``shapes`` images behind the built-in segmentation and detection sets.
* :mod:`.augment` — the ``augmentation.train`` list on batches (kornia), seeded for bit-identical resumes.
* :mod:`.batches` — training batches tagged with their (epoch, step), so that the loader's workers can augment them.
* :mod:`.bad_samples` — ``data.on_bad_sample``: stop on a bad sample, or skip it and count it.
* :mod:`.cache` — ``environment.cache_data``: keep every decoded, resized sample in memory.
"""

from .augment import Augmentation, build_augmentation
from .bad_samples import POLICIES, BadSamples, Dropped, DroppingCollate, SkipUnreadable, write_bad_samples
from .batches import AugmentingCollate, ResumingSampler, StepBatches, Stepped
from .build import FORMATS_BY_TASK, build_data, preprocess_from_json
from .cache import cached
from .common import IMAGE_SUFFIXES, DataBundle, Preprocess, open_image, pil_module
from .pose import PosePreprocess
from .segmentation import IGNORE_INDEX

__all__ = [
    "FORMATS_BY_TASK",
    "IGNORE_INDEX",
    "IMAGE_SUFFIXES",
    "POLICIES",
    "Augmentation",
    "AugmentingCollate",
    "BadSamples",
    "DataBundle",
    "Dropped",
    "DroppingCollate",
    "PosePreprocess",
    "Preprocess",
    "ResumingSampler",
    "SkipUnreadable",
    "StepBatches",
    "Stepped",
    "build_augmentation",
    "build_data",
    "cached",
    "open_image",
    "pil_module",
    "preprocess_from_json",
    "write_bad_samples",
]
