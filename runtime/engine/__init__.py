"""The training engine: what ``npc train`` runs, epoch by epoch.

* :mod:`.trainer` — ``train`` (setup, resume, the epoch loop, saving), ``train_one_epoch`` and the step.
* :mod:`.optim` — optimiser param groups, learning-rate schedule with warm-up, EMA, as NetsPresso Trainer does.
* :mod:`.precision` — ``training.mixed_precision``: autocast and the grad scaler.
* :mod:`.distributed` — the process group under ``torchrun`` and the few collectives the loop needs.
* :mod:`.faults` — stop signals, step checkpoints, the run-folder lock, non-finite losses.
* :mod:`.metrics` — validation per task (torchmetrics, COCOeval, PCK): ``evaluate``.
* :mod:`.report` — progress bar, epoch lines, ``metrics.csv``, TensorBoard.
* :mod:`.tracking` — ``logging.mlflow``: params, per-epoch metrics and the best weights in an MLflow run.
* :mod:`.load_model` — spec or ``model.py`` to ``nn.Module``: compile, import, build, load weights, freeze.

Names are imported on first use, so that ``import npc.runtime.engine`` stays cheap.
"""

from .. import lazy_exports

_EXPORTS = {
    "train": "trainer",
    "TrainOptions": "trainer",
    "TrainResult": "trainer",
    "Interrupted": "trainer",
    "resolve_device": "trainer",
    "evaluate": "metrics",
    "METRICS": "metrics",
    "PRIMARY": "metrics",
    "build_optimizer": "optim",
    "build_scheduler": "optim",
    "lr_schedule": "optim",
    "build_precision": "precision",
    "Reporter": "report",
    "read_metrics": "report",
    "build": "load_model",
    "import_model": "load_model",
    "model_source": "load_model",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
