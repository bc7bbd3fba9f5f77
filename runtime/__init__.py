"""The runtime: train, evaluate, predict and export compiled models. Everything here needs torch.

The folders say what each part does; each package's ``__init__`` is its public surface:

* :mod:`npc.runtime.data` — the per-task datasets (built-in sets, NetsPresso's local layouts, COCO),
  training-time augmentation, the bad-sample policy and the in-memory cache.
* :mod:`npc.runtime.losses` — the spec's ``losses`` as one module, and the criterion of every head.
* :mod:`npc.runtime.engine` — the training loop (``train_one_epoch``, ``evaluate``, ``train``), optimiser and
  schedule, precision, DDP under ``torchrun``, faults and resumption, metrics and reporting.
* :mod:`npc.runtime.tools` — what works on a compiled or trained model: summary, export (ONNX, int8),
  BN folding and re-parameterisation, check-weights, evaluate/predict (torch or ONNX), drawing.

Two modules are shared by all of them: :mod:`.errors` (the typed errors the CLI turns into exit codes) and
:mod:`.checkpoint` (weights and training state on disk, written through ``npc._atomic``).

Importing ``npc.runtime`` itself imports nothing heavy: the CLI registers its commands without torch.
"""

from collections.abc import Callable
from importlib import import_module
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A package's ``__getattr__`` (PEP 562) that imports the module holding a public name on its first use, so
    importing the package stays cheap: ``exports`` maps each name to its module within ``package``."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(import_module(f".{exports[name]}", package), name)

    return __getattr__
