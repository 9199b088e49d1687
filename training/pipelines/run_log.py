"""Rank 0's record of a run: TensorBoard events, metrics.csv (one row per epoch) and the best predictions."""
from __future__ import annotations

import csv
import io
from pathlib import Path

from tensorboardX import SummaryWriter

from core.atomic import atomic_write_bytes, atomic_write_json

TRAIN_COLUMNS = ("train_loss", "lr", "replaced_crops", "images_per_s", "data_wait")
METRIC_COLUMNS = ("epoch", *TRAIN_COLUMNS, "fake_loss", "real_loss", "balanced_loss", "auc")


def read_metrics(path: Path) -> list[dict]:
    """metrics.csv rows with numbers parsed; empty cells (epochs without validation) become None."""
    with open(path, newline="") as handle:
        return [{key: (float(value) if value not in ("", None) else None) for key, value in row.items()}
                for row in csv.DictReader(handle)]


class RunLog:
    def __init__(self, folder: Path, start_epoch: int = 0):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.metrics_path = self.folder / "metrics.csv"
        # A resumed run keeps the rows of the epochs it does not redo.
        self.rows = ([row for row in read_metrics(self.metrics_path) if row["epoch"] < start_epoch]
                     if self.metrics_path.is_file() else [])
        self.writer = SummaryWriter(str(self.folder))

    def append(self, record: dict) -> None:
        self.rows.append(record)
        for key, value in record.items():
            if key != "epoch" and value is not None:
                self.writer.add_scalar(f"{'train' if key in TRAIN_COLUMNS else 'val'}/{key}",
                                       value, record["epoch"])
        self.writer.flush()
        text = io.StringIO()
        table = csv.DictWriter(text, fieldnames=METRIC_COLUMNS, extrasaction="ignore")
        table.writeheader()
        for row in self.rows:
            table.writerow({key: ("" if row.get(key) is None else
                                  int(row[key]) if key in ("epoch", "replaced_crops") else row[key])
                            for key in METRIC_COLUMNS})
        atomic_write_bytes(self.metrics_path, text.getvalue().encode())

    def write_predictions(self, predictions: dict) -> None:
        atomic_write_json(self.folder / "predictions_best.json", predictions)

    def close(self) -> None:
        self.writer.close()
