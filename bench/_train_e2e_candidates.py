"""Candidate runtime fixes, applied as monkeypatches to npc's runtime for measurement only (the runtime itself is
changed separately): ``bench/train_e2e.py --only npc --npc-preload bench/_train_e2e_candidates.py
--npc-env NPC_E2E_FIX=persistent,channels_last``.

- ``persistent``: the training and validation DataLoaders keep their worker processes between epochs
  (``persistent_workers=True`` when ``num_workers > 0``), as NetsPresso Trainer's ``create_loader`` does; npc
  started ``num_workers`` fresh processes for each split in every epoch.
- ``channels_last``: the model and each training/validation batch in ``torch.channels_last`` memory format.
- ``valid_memory``: the validation split decoded once into memory (a TensorDataset-like list) and loaded with no
  workers.
"""

from __future__ import annotations

import os

import torch


def _trainer():
    try:
        from npc.runtime.engine import trainer
    except ImportError:
        from npc.runtime import _train as trainer
    return trainer


FIXES = {name for name in os.environ.get("NPC_E2E_FIX", "").split(",") if name}


def _persistent() -> None:
    _train = _trainer()

    base = _train.DataLoader

    def loader(*args, **kwargs):
        if kwargs.get("num_workers", 0) > 0:
            kwargs.setdefault("persistent_workers", True)
        return base(*args, **kwargs)

    _train.DataLoader = loader


def _channels_last() -> None:
    _train = _trainer()

    build = _train.build

    def built(*args, **kwargs):
        return build(*args, **kwargs).to(memory_format=torch.channels_last)

    _train.build = built
    on_device = _train._on_device

    def moved(*args, **kwargs):
        images, target = on_device(*args, **kwargs)
        return images.contiguous(memory_format=torch.channels_last), target

    _train._on_device = moved
    evaluate = _train.evaluate

    def evaluated(model, loader, *args, **kwargs):
        class Last:  # validation batches in channels_last too
            def __iter__(self):
                for images, target in loader:
                    yield images.contiguous(memory_format=torch.channels_last), target

            def __len__(self):
                return len(loader)

            def __getattr__(self, name):
                return getattr(loader, name)

        return evaluate(model, Last(), *args, **kwargs)

    _train.evaluate = evaluated


def _valid_memory() -> None:
    _train = _trainer()

    base = _train.DataLoader

    class Decoded(torch.utils.data.Dataset):
        def __init__(self, dataset):
            self.items = [dataset[i] for i in range(len(dataset))]

        def __len__(self):
            return len(self.items)

        def __getitem__(self, index):
            return self.items[index]

    def loader(dataset, *args, **kwargs):
        if kwargs.get("shuffle") is False and kwargs.get("sampler") is None:  # the validation loader
            dataset, kwargs["num_workers"], kwargs["worker_init_fn"] = Decoded(dataset), 0, None
        return base(dataset, *args, **kwargs)

    _train.DataLoader = loader


for fix in sorted(FIXES):
    {"persistent": _persistent, "channels_last": _channels_last, "valid_memory": _valid_memory}[fix]()
