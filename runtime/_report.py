"""What a run shows and logs: a live progress bar (only on a terminal), one line per epoch, a summary table,
``metrics.csv`` (rewritten atomically each epoch) and TensorBoard scalars under ``tb/``.
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

from ._checkpoint import atomic_write_text

__all__ = ["METRIC_COLUMNS", "Reporter", "read_metrics"]

METRIC_COLUMNS = (
    "epoch",
    "train_loss",
    "valid_loss",
    "valid_top1",
    "valid_top5",
    "lr",
    "epoch_seconds",
    "train_images_per_second",
)


def read_metrics(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


class Reporter:
    def __init__(self, run_dir: Path, console: Console, *, epochs: int, start_epoch: int, tensorboard: bool = True):
        self.run_dir, self.console, self.epochs = run_dir, console, epochs
        self.csv_path = run_dir / "metrics.csv"
        # a resumed run keeps the rows of the epochs it does not redo
        self.rows = [r for r in read_metrics(self.csv_path) if _int(r.get("epoch")) <= start_epoch]
        self.writer = self._tensorboard(run_dir / "tb") if tensorboard else None
        self.progress: Progress | None = None
        self.task = None
        self.best: float = -math.inf

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
            {k: _fmt(row.get(k)) for k in METRIC_COLUMNS}
        ]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=METRIC_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_text(self.csv_path, buffer.getvalue())
        if self.writer is not None:
            for key in ("train_loss", "valid_loss", "valid_top1", "valid_top5", "lr"):
                if row.get(key) is not None:
                    tag = key.replace("_", "/", 1) if key != "lr" else "train/lr"
                    self.writer.add_scalar(tag, row[key], row["epoch"])
            self.writer.flush()
        top5 = f"  top5 {row['valid_top5']:.2%}" if row.get("valid_top5") is not None else ""
        mark = "  [green]best[/]" if improved else ""
        self.console.print(
            f"epoch {row['epoch']:>3}/{self.epochs}  train loss {row['train_loss']:.4f}  "
            f"valid loss {row['valid_loss']:.4f}  top1 {row['valid_top1']:.2%}{top5}  lr {row['lr']:.2e}  "
            f"{row['epoch_seconds']:.1f}s  {row['train_images_per_second']:.0f} img/s{mark}",
            highlight=False,
            soft_wrap=True,
        )

    def summary(self, best_epoch: int | None, best_top1: float | None) -> None:
        table = Table(title="training summary", title_justify="left")
        for column in ("epoch", "train loss", "valid loss", "top-1", "top-5", "lr", "time"):
            table.add_column(column, justify="right")
        for r in self.rows:
            epoch = _int(r["epoch"])
            style = "bold green" if epoch == best_epoch else None
            table.add_row(
                str(epoch),
                _short(r["train_loss"], "{:.4f}"),
                _short(r["valid_loss"], "{:.4f}"),
                _short(r["valid_top1"], "{:.2%}"),
                _short(r["valid_top5"], "{:.2%}"),
                _short(r["lr"], "{:.2e}"),
                _short(r["epoch_seconds"], "{:.1f}s"),
                style=style,
            )
        self.console.print(table)

    def close(self) -> None:
        self.stop()
        if self.writer is not None:
            self.writer.close()


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
