"""Score a submission CSV against labels: metrics on stdout, plots and an HTML report of the worst mistakes.

    python evaluate.py --predictions submission.csv --labels DATA/dfdc_train_part_0/metadata.json [--out-dir eval]

--labels takes metadata.json files (label REAL/FAKE) and/or CSV files (filename,label with 0/1 or REAL/FAKE).
The crop scores written by predict_folder.py (<predictions>.crops.csv) are picked up automatically.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from inference.metrics import compute_metrics
from inference.outputs import crops_path, errors_path
from inference.report import plot_histogram, plot_roc, write_html
from core.atomic import atomic_write_json
from core.layout import read_metadata

LABEL_VALUES = {"REAL": 0, "FAKE": 1, "0": 0, "1": 1}


def read_labels(paths: list[Path]) -> dict[str, int]:
    labels: dict[str, int] = {}
    for path in paths:
        if path.suffix == ".json":
            try:
                entries = {name: info["label"] for name, info in read_metadata(path).items()}
            except ValueError as err:
                raise SystemExit(f"error: {err}") from err
        else:
            frame = pd.read_csv(path, dtype=str)
            if not {"filename", "label"} <= set(frame.columns):
                raise SystemExit(f"error: {path}: expected columns filename,label, found {list(frame.columns)}")
            entries = dict(zip(frame["filename"], frame["label"]))
        for name, label in entries.items():
            value = LABEL_VALUES.get(str(label).strip().upper().removesuffix(".0"))
            if value is None:
                raise SystemExit(f"error: {path}: {name} has label {label!r}; expected REAL/FAKE or 0/1")
            if name in labels and labels[name] != value:
                raise SystemExit(f"error: {path}: {name} is labelled differently in another labels file")
            labels[name] = value
    return labels


def read_predictions(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, dtype={"filename": str})
    if not {"filename", "label"} <= set(frame.columns):
        raise SystemExit(f"error: {path}: expected columns filename,label, found {list(frame.columns)}")
    bad = frame[frame["label"].isna() | (frame["label"] < 0) | (frame["label"] > 1)]
    if not bad.empty:
        raise SystemExit(f"error: {path}: {len(bad)} predictions are missing or outside [0, 1], "
                         f"e.g. {bad['filename'].iloc[0]}")
    return frame.rename(columns={"label": "p"})


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--predictions", type=Path, required=True)
    parser.add_argument("--labels", type=Path, nargs="+", required=True)
    parser.add_argument("--out-dir", type=Path, default=None, help="default: <predictions>_eval/")
    parser.add_argument("--crops", type=Path, default=None, help="crop scores (default <predictions>.crops.csv if present)")
    parser.add_argument("--top-mistakes", type=int, default=10)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    out_dir = args.out_dir or args.predictions.with_name(args.predictions.stem + "_eval")
    predictions = read_predictions(args.predictions)
    labels = read_labels(args.labels)
    predicted = set(predictions["filename"])
    without_label = sorted(predicted - labels.keys())
    without_prediction = sorted(labels.keys() - predicted)
    joined = predictions[predictions["filename"].isin(labels.keys())].copy()
    joined["y"] = joined["filename"].map(labels).astype(int)
    if joined.empty:
        raise SystemExit("error: no prediction has a label (do the file names match?)")

    metrics = compute_metrics(joined["y"].to_numpy(), joined["p"].to_numpy())
    metrics["predictions_without_label"] = len(without_label)
    metrics["labels_without_prediction"] = len(without_prediction)
    metrics["predicted_exactly_0.5"] = int((joined["p"] == 0.5).sum())
    notes = []
    if without_label:
        notes.append(f"{len(without_label)} predictions have no label (ignored): {', '.join(without_label[:10])}")
    if without_prediction:
        notes.append(f"{len(without_prediction)} labelled videos have no prediction (ignored): "
                     f"{', '.join(without_prediction[:10])}")
    errors_file = errors_path(args.predictions)
    errors = pd.read_csv(errors_file) if errors_file.is_file() else []
    if len(errors):
        notes.append(f"{len(errors)} videos were not scored (0.5), see {errors_file}")

    for key, value in metrics.items():
        print(f"{key:28s} {value:.6f}" if isinstance(value, float) else f"{key:28s} {value}")
    for note in notes:
        print(f"note: {note}", file=sys.stderr)

    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "metrics.json", metrics)
    y, p = joined["y"].to_numpy(), joined["p"].to_numpy()
    plot_roc(y, p, out_dir / "roc.png", metrics["roc_auc"])
    plot_histogram(y, p, out_dir / "hist.png")
    crops_file = args.crops or crops_path(args.predictions)
    crops = pd.read_csv(crops_file, dtype={"filename": str}) if crops_file.is_file() else None
    if args.crops and crops is None:
        raise SystemExit(f"error: --crops {args.crops} does not exist")
    wrong = joined[(joined["p"] > 0.5).astype(int) != joined["y"]].copy()
    wrong["confidence"] = np.abs(wrong["p"] - 0.5)
    mistakes = wrong.sort_values("confidence", ascending=False).head(args.top_mistakes)
    write_html(out_dir / "report.html", metrics, notes, mistakes, crops, [out_dir / "roc.png", out_dir / "hist.png"])
    print(f"wrote {out_dir / 'metrics.json'}, roc.png, hist.png, report.html", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
