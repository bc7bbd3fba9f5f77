"""Candidate runtime fixes, applied as monkeypatches to npc's runtime for measurement only (a fix that pays is then
made in the runtime itself, and leaves this file): ``bench/train_e2e.py --variant valid_memory``.

- ``valid_memory``: the validation split decoded once into memory (a TensorDataset-like list) and loaded with no
  workers.
- ``sync_checkpoints``: the checkpoint files written in the training thread, as before 2026-12-02 (4th session),
  instead of by ``BackgroundWriter`` while the next epoch trains: what the background writer saves.

Made in the runtime since (2026-12-02): ``persistent`` (DataLoader workers live as long as the run) and
``channels_last`` (now ``training.channels_last``, which ``--variant channels_last`` sets in npc's training file).
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


def _sync_checkpoints() -> None:
    from npc.runtime.checkpoint import BackgroundWriter

    def submit(self, write, *args):
        write(*args)

    BackgroundWriter.submit = submit


for fix in sorted(FIXES):
    {"valid_memory": _valid_memory, "sync_checkpoints": _sync_checkpoints}[fix]()
