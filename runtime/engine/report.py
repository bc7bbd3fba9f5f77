"""What a run shows and logs: a live progress bar (only on a terminal), one line per epoch, a summary table,
``metrics.csv`` (rewritten atomically each epoch), TensorBoard scalars under ``tb/`` and, with ``logging.mlflow``,
the same rows as MLflow metrics (:mod:`.tracking`).
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from ..checkpoint import atomic_write_text
from ..data import BadSamples
from .tracking import ARTIFACTS, MlflowLog

__all__ = ["METRIC_COLUMNS", "Reporter", "SilentReporter", "metric_columns", "read_metrics"]

LABELS = {"top1": "top-1", "top5": "top-5", "miou": "mIoU", "pixel_acc": "pixel acc", "map": "mAP", "map50": "mAP50"}
LABELS.update({"pck": "PCK@0.2", "oks_ap": "OKS AP"})  # pose estimation


def metric_columns(metrics: tuple[str, ...]) -> tuple[str, ...]:
    """The metrics.csv header for a task whose validation reports ``metrics`` (e.g. ``("top1", "top5")``)."""
    return (
        "epoch",
        "train_loss",
        "valid_loss",
        *(f"valid_{m}" for m in metrics),
        "lr",
        "epoch_seconds",
        "train_images_per_second",
    )


METRIC_COLUMNS = metric_columns(("top1", "top5"))  # classification's


def read_metrics(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


class Reporter:
    def __init__(
        self,
        run_dir: Path,
        console: Console,
        *,
        epochs: int,
        start_epoch: int,
        tensorboard: bool = True,
        metrics: tuple[str, ...] = ("top1", "top5"),
        tracking: MlflowLog | None = None,
    ):
        self.run_dir, self.console, self.epochs = run_dir, console, epochs
        self.metrics, self.columns = metrics, metric_columns(metrics)
        self.csv_path = run_dir / "metrics.csv"
        # a resumed run keeps the rows of the epochs it does not redo
        self.rows = [r for r in read_metrics(self.csv_path) if _int(r.get("epoch")) <= start_epoch]
        self.writer = self._tensorboard(run_dir / "tb") if tensorboard else None
        self.progress: Progress | None = None
        self.task = None
        self.best: float = -math.inf
        self.tracking, self.finished = tracking, False

    def _tensorboard(self, folder: Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            self.console.print("[yellow]note:[/] tensorboard is not installed; no tb/ logs")
            return None
        return SummaryWriter(log_dir=str(folder))

    # --- live progress ---------------------------------------------------------------------------------------

    def start_epoch(self, epoch: int, steps: int, lr: float) -> None:
        if not self.console.is_terminal:
            return
        self.progress = Progress(
            TextColumn(f"epoch {epoch + 1}/{self.epochs}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}  lr {task.fields[lr]:.2e}  {task.fields[speed]:.0f} img/s"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self.progress.start()
        self.task = self.progress.add_task("train", total=steps, loss=float("nan"), lr=lr, speed=0.0)

    def step(self, global_step: int, loss: float, lr: float, speed: float) -> None:
        if self.progress is not None:
            self.progress.update(self.task, advance=1, loss=loss, lr=lr, speed=speed)
        if self.writer is not None:
            self.writer.add_scalar("train/step_loss", loss, global_step)

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    # --- per epoch -------------------------------------------------------------------------------------------

    def end_epoch(self, row: dict[str, Any], improved: bool) -> None:
        self.stop()
        self.rows = [r for r in self.rows if _int(r.get("epoch")) != row["epoch"]] + [
            {k: _fmt(row.get(k)) for k in self.columns}
        ]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_text(self.csv_path, buffer.getvalue())
        if self.writer is not None:
            for key in ("train_loss", "valid_loss", *(f"valid_{m}" for m in self.metrics), "lr"):
                if row.get(key) is not None:
                    tag = key.replace("_", "/", 1) if key != "lr" else "train/lr"
                    self.writer.add_scalar(tag, row[key], row["epoch"])
            self.writer.flush()
        if self.tracking is not None:
            self.tracking.epoch({k: row.get(k) for k in self.columns})
        shown = "".join(
            f"  {m.replace('_', ' ')} {row[f'valid_{m}']:.2%}"
            for m in self.metrics
            if row.get(f"valid_{m}") is not None
        )
        mark = "  [green]best[/]" if improved else ""
        self.console.print(
            f"epoch {row['epoch']:>3}/{self.epochs}  train loss {row['train_loss']:.4f}  "
            f"valid loss {_short(row['valid_loss'], '{:.4f}')}{shown}  lr {row['lr']:.2e}  "  # "-": not validated
            f"{row['epoch_seconds']:.1f}s  {row['train_images_per_second']:.0f} img/s{mark}",
            highlight=False,
            soft_wrap=True,
        )

    def summary(self, best_epoch: int | None, bad_samples: BadSamples | None = None) -> None:
        table = Table(title="training summary", title_justify="left")
        for column in ("epoch", "train loss", "valid loss", *(LABELS[m] for m in self.metrics), "lr", "time"):
            table.add_column(column, justify="right")
        for r in self.rows:
            epoch = _int(r["epoch"])
            style = "bold green" if epoch == best_epoch else None
            table.add_row(
                str(epoch),
                _short(r["train_loss"], "{:.4f}"),
                _short(r["valid_loss"], "{:.4f}"),
                *(_short(r.get(f"valid_{m}"), "{:.2%}") for m in self.metrics),
                _short(r["lr"], "{:.2e}"),
                _short(r["epoch_seconds"], "{:.1f}s"),
                style=style,
            )
        self.console.print(table)
        if bad_samples is not None and bad_samples.any():
            self.console.print(bad_sample_table(bad_samples))
            self.console.print(f"every skipped file: {self.run_dir / 'bad_samples.json'}", highlight=False)
        if self.tracking is not None:
            self.tracking.artifacts([self.run_dir / name for name in ARTIFACTS])
        self.finished = True

    def close(self) -> None:
        """Ends the logs; an MLflow run is marked finished only after :meth:`summary` (else failed or killed)."""
        self.stop()
        if self.writer is not None:
            self.writer.close()
        if self.tracking is not None:
            self.tracking.end(self.finished)
            self.tracking = None


class SilentReporter:
    """What the processes other than rank 0 report under torchrun: nothing (rank 0 shows and logs the run)."""

    def start_epoch(self, epoch: int, steps: int, lr: float) -> None:
        pass

    def step(self, global_step: int, loss: float, lr: float, speed: float) -> None:
        pass

    def end_epoch(self, row: dict[str, Any], improved: bool) -> None:
        pass

    def summary(self, best_epoch: int | None, bad_samples: BadSamples | None = None) -> None:
        pass

    def close(self) -> None:
        pass


def bad_sample_table(bad: BadSamples) -> Table:
    """Per split: samples kept, skipped by reason (``--on-bad-sample skip``), and repairs such as clipped boxes."""
    table = Table(title=f"bad samples (on_bad_sample: {bad.policy})", title_justify="left")
    for column, justify in (("split", "left"), ("kept", "right"), ("skipped", "right"), ("by reason", "left")):
        table.add_column(column, justify=justify)
    for split, row in bad.summary()["splits"].items():
        skipped = row["skipped"]
        details = [f"{n} {reason}" for reason, n in skipped.items()]
        details += [f"{n} {what}" for what, n in row["repaired"].items()]
        kept = "-" if row["kept"] is None else str(row["kept"])
        table.add_row(split, kept, str(sum(skipped.values())), "; ".join(details) or "-")
    return table


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _short(text: str, pattern: str) -> str:
    try:
        return pattern.format(float(text))
    except (TypeError, ValueError):
        return "-"
